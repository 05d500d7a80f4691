//! Step 3: become the service user and hold no capability at all.
//!
//! Started as root: clear the ambient set, empty the bounding set (while
//! `CAP_SETPCAP` is still held), `setgroups` → `setresgid` → `setresuid`,
//! then `capset` every set to zero (a uid change clears permitted and
//! effective, but not inheritable). Started by systemd as the service user
//! with `CapabilityBoundingSet=` empty: the same end state is checked, and
//! nothing needs changing.
//!
//! `rustix`'s credential calls act on the calling thread only (raw system
//! calls, not glibc's all-threads broadcast): `apply` checks that no other
//! thread exists before it gets here.

use rustix::io::Errno;
use rustix::process::{Gid, Uid, getegid, geteuid, getgid, getgroups, getuid};
use rustix::thread::{
    CapabilitySet, CapabilitySets, capabilities, capability_is_in_ambient_set,
    capability_is_in_bounding_set, clear_ambient_capability_set,
    remove_capability_from_bounding_set, set_capabilities, set_thread_groups, set_thread_res_gid,
    set_thread_res_uid,
};

use super::error::SandboxError;
use super::plan::SandboxPlan;
use super::sys;

/// The service user's ids, resolved through NSS before any restriction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user's name.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// Supplementary groups (the primary gid included), sorted.
    pub groups: Vec<u32>,
}

/// Looks the plan's user and group up. Refuses id 0 anywhere.
pub(crate) fn resolve(plan: &SandboxPlan) -> Result<Identity, SandboxError> {
    let lookup_err = |kind: &'static str, name: &str| {
        let name = name.to_owned();
        move |source| SandboxError::Lookup { kind, name, source }
    };
    let user = sys::lookup_user(&plan.user)
        .map_err(lookup_err("user", &plan.user))?
        .ok_or_else(|| SandboxError::NoSuchIdentity {
            kind: "user",
            name: plan.user.clone(),
        })?;
    if user.uid == 0 {
        return Err(SandboxError::RootIdentity {
            kind: "user",
            name: plan.user.clone(),
        });
    }
    let gid = match &plan.group {
        None => user.gid,
        Some(group) => sys::lookup_group(group)
            .map_err(lookup_err("group", group))?
            .ok_or_else(|| SandboxError::NoSuchIdentity {
                kind: "group",
                name: group.clone(),
            })?,
    };
    let mut groups =
        sys::user_groups(&plan.user, gid).map_err(lookup_err("groups of", &plan.user))?;
    if !groups.contains(&gid) {
        groups.push(gid);
    }
    groups.sort_unstable();
    groups.dedup();
    if groups.contains(&0) {
        return Err(SandboxError::RootIdentity {
            kind: "group",
            name: format!("root (a group of {})", plan.user),
        });
    }
    Ok(Identity {
        user: plan.user.clone(),
        uid: user.uid,
        gid,
        groups,
    })
}

/// Every capability number the kernel knows (stops at the first `EINVAL`).
fn known_capabilities() -> impl Iterator<Item = CapabilitySet> {
    (0..64u32)
        .map(|bit| CapabilitySet::from_bits_retain(1u64 << bit))
        .take_while(|cap| capability_is_in_bounding_set(*cap) != Err(Errno::INVAL))
}

fn current_groups() -> Result<Vec<u32>, SandboxError> {
    let mut groups: Vec<u32> = getgroups()
        .map_err(|e| SandboxError::credentials("getgroups", e))?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    groups.push(getegid().as_raw());
    groups.sort_unstable();
    groups.dedup();
    Ok(groups)
}

fn already(identity: &Identity) -> Result<bool, SandboxError> {
    Ok(getuid().as_raw() == identity.uid
        && geteuid().as_raw() == identity.uid
        && getgid().as_raw() == identity.gid
        && getegid().as_raw() == identity.gid
        && current_groups()? == identity.groups)
}

/// Switches to `identity` and drops every capability, then checks it.
pub(crate) fn drop_to(identity: &Identity) -> Result<(), SandboxError> {
    let switch = !already(identity)?;
    let caps = capabilities(None).map_err(|e| SandboxError::credentials("capget", e))?;
    if switch
        && !caps
            .effective
            .contains(CapabilitySet::SETUID | CapabilitySet::SETGID)
    {
        return Err(SandboxError::WrongUser {
            current: geteuid().as_raw(),
            target: identity.uid,
        });
    }

    clear_ambient_capability_set()
        .map_err(|e| SandboxError::credentials("prctl(PR_CAP_AMBIENT_CLEAR_ALL)", e))?;
    for cap in known_capabilities() {
        if capability_is_in_bounding_set(cap) == Ok(true) {
            match remove_capability_from_bounding_set(cap) {
                Ok(()) => {}
                Err(Errno::PERM) => return Err(SandboxError::BoundingSetNotEmpty),
                Err(e) => return Err(SandboxError::credentials("prctl(PR_CAPBSET_DROP)", e)),
            }
        }
    }

    if switch {
        let groups: Vec<Gid> = identity.groups.iter().map(|&g| Gid::from_raw(g)).collect();
        set_thread_groups(&groups).map_err(|e| SandboxError::credentials("setgroups", e))?;
        let gid = Gid::from_raw(identity.gid);
        set_thread_res_gid(gid, gid, gid).map_err(|e| SandboxError::credentials("setresgid", e))?;
        let uid = Uid::from_raw(identity.uid);
        set_thread_res_uid(uid, uid, uid).map_err(|e| SandboxError::credentials("setresuid", e))?;
    }

    let none = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    // Skipped when already empty, so that a unit may deny `capset` (it is
    // in systemd's @privileged group).
    let now = capabilities(None).map_err(|e| SandboxError::credentials("capget", e))?;
    if now != none {
        set_capabilities(None, none).map_err(|e| SandboxError::credentials("capset", e))?;
    }
    verify(identity)
}

fn verify(identity: &Identity) -> Result<(), SandboxError> {
    if !already(identity)? {
        return Err(SandboxError::PrivilegesRemain {
            what: "user or group ids differ from the service user's",
        });
    }
    let caps = capabilities(None).map_err(|e| SandboxError::credentials("capget", e))?;
    if !caps.effective.is_empty() || !caps.permitted.is_empty() || !caps.inheritable.is_empty() {
        return Err(SandboxError::PrivilegesRemain {
            what: "effective, permitted or inheritable capabilities",
        });
    }
    for cap in known_capabilities() {
        if capability_is_in_bounding_set(cap) == Ok(true) {
            return Err(SandboxError::PrivilegesRemain {
                what: "bounding-set capabilities",
            });
        }
        if capability_is_in_ambient_set(cap) == Ok(true) {
            return Err(SandboxError::PrivilegesRemain {
                what: "ambient capabilities",
            });
        }
    }
    Ok(())
}
