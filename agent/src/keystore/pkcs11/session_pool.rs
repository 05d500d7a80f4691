//! A fixed set of sessions shared by the threads that unwrap. A
//! `cryptoki::Session` is `Send` but not `Sync`: each unwrap borrows one
//! session exclusively and gives it back on drop.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use cryptoki::session::Session;

/// The pool. Its size bounds how many unwraps run at once.
pub struct SessionPool {
    idle: Mutex<Vec<Session>>,
    returned: Condvar,
}

impl SessionPool {
    /// A pool over `sessions` (already open and logged in).
    pub fn new(sessions: Vec<Session>) -> Self {
        Self {
            idle: Mutex::new(sessions),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Session>> {
        // A panic while holding the lock cannot leave the Vec inconsistent.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` with a session borrowed exclusively, waiting while all are
    /// in use; the session goes back to the pool afterwards.
    pub fn with<T>(&self, f: impl FnOnce(&Session) -> T) -> T {
        let session = {
            let mut idle = self.lock();
            loop {
                if let Some(session) = idle.pop() {
                    break session;
                }
                idle = self
                    .returned
                    .wait(idle)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let out = f(&session);
        self.lock().push(session);
        self.returned.notify_one();
        out
    }
}
