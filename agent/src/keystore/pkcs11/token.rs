//! Loading the module, finding the token by label, sessions and login.

use std::path::Path;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

use crate::keystore::{KeyStoreError, Pkcs11Op};

/// Loads the module and runs `C_Initialize`, telling the library to use OS
/// locks and **not to create threads** (the sandbox comes later). A module
/// another part of this process already initialised is fine.
pub fn load_module(module: &Path) -> Result<Pkcs11, KeyStoreError> {
    let context = Pkcs11::new(module).map_err(|source| KeyStoreError::LoadModule {
        module: module.to_owned(),
        source,
    })?;
    let flags = CInitializeFlags::OS_LOCKING_OK | CInitializeFlags::LIBRARY_CANT_CREATE_OS_THREADS;
    match context.initialize(CInitializeArgs::new(flags)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(context),
        Err(source) => Err(KeyStoreError::Pkcs11 {
            op: Pkcs11Op::Initialize,
            source,
        }),
    }
}

/// The slot holding the initialised token labelled `label` (slot numbers
/// move between runs; labels do not).
pub fn find_token(context: &Pkcs11, label: &str) -> Result<Slot, KeyStoreError> {
    let err = |source| KeyStoreError::Pkcs11 {
        op: Pkcs11Op::FindToken,
        source,
    };
    for slot in context.get_slots_with_initialized_token().map_err(err)? {
        let info = context.get_token_info(slot).map_err(err)?;
        if info.label().trim_end() == label {
            return Ok(slot);
        }
    }
    Err(KeyStoreError::TokenNotFound {
        label: label.to_owned(),
    })
}

/// Opens a read-write session (key generation writes a token object).
pub fn open_session(context: &Pkcs11, slot: Slot) -> Result<Session, KeyStoreError> {
    context
        .open_rw_session(slot)
        .map_err(|source| KeyStoreError::Pkcs11 {
            op: Pkcs11Op::OpenSession,
            source,
        })
}

/// Logs the user in, once. A refused PIN is reported and never retried.
pub fn login(session: &Session, pin: &AuthPin) -> Result<(), KeyStoreError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(Error::Pkcs11(RvError::PinIncorrect, _)) => Err(KeyStoreError::PinIncorrect),
        Err(Error::Pkcs11(RvError::PinLocked, _)) => Err(KeyStoreError::PinLocked),
        Err(source) => Err(KeyStoreError::Pkcs11 {
            op: Pkcs11Op::Login,
            source,
        }),
    }
}
