//! Landlock through raw syscalls: the ruleset is built in the parent (allocations and path
//! lookups are not safe between fork and exec), the child only calls `restrict_self`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

// Filesystem access rights (uapi/linux/landlock.h), by the ABI that introduced them.
const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_ABI1_ALL: u64 = (1 << 13) - 1;
const FS_REFER: u64 = 1 << 13; // ABI 2
const FS_TRUNCATE: u64 = 1 << 14; // ABI 3
const FS_IOCTL_DEV: u64 = 1 << 15; // ABI 5
const NET_BIND_TCP: u64 = 1 << 0; // ABI 4
const NET_CONNECT_TCP: u64 = 1 << 1; // ABI 4
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0; // ABI 6
const SCOPE_SIGNAL: u64 = 1 << 1; // ABI 6

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: u32 = 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version the kernel offers; `None` when Landlock is missing or disabled.
pub fn abi_version() -> Option<i32> {
    // SAFETY: documented query form: null attr, size 0, VERSION flag.
    let v = unsafe {
        libc::syscall(libc::SYS_landlock_create_ruleset, std::ptr::null::<RulesetAttr>(), 0usize, CREATE_RULESET_VERSION)
    };
    (v > 0).then_some(v as i32)
}

/// What a sandboxed path may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read files, list directories, execute.
    ReadExec,
    /// Read and write a device file such as /dev/null (file rights only).
    ReadWriteFile,
    /// Everything, beneath this directory.
    Full,
}

/// A Landlock ruleset ready to be applied by `restrict_self` in a child.
#[derive(Debug)]
pub struct Ruleset {
    fd: OwnedFd,
    handled_fs: u64,
}

impl Ruleset {
    /// Handles every filesystem right of `abi`, TCP bind/connect (ABI >= 4) and signal and
    /// abstract-socket scoping (ABI >= 6): whatever no rule allows is denied.
    pub fn new(abi: i32) -> std::io::Result<Self> {
        let mut handled_fs = FS_ABI1_ALL;
        if abi >= 2 {
            handled_fs |= FS_REFER;
        }
        if abi >= 3 {
            handled_fs |= FS_TRUNCATE;
        }
        if abi >= 5 {
            handled_fs |= FS_IOCTL_DEV;
        }
        let attr = RulesetAttr {
            handled_access_fs: handled_fs,
            handled_access_net: if abi >= 4 { NET_BIND_TCP | NET_CONNECT_TCP } else { 0 },
            scoped: if abi >= 6 { SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL } else { 0 },
        };
        // Older kernels reject fields they do not know: pass only the prefix this ABI has.
        let size = match abi {
            1..=3 => 8,
            4 | 5 => 16,
            _ => std::mem::size_of::<RulesetAttr>(),
        };
        // SAFETY: attr outlives the call and `size` is within it.
        let fd = unsafe { libc::syscall(libc::SYS_landlock_create_ruleset, &attr as *const RulesetAttr, size, 0u32) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd (O_CLOEXEC) to us.
        Ok(Ruleset { fd: unsafe { OwnedFd::from_raw_fd(fd as i32) }, handled_fs })
    }

    /// Allows `access` beneath `path` (or on the file `path`).
    pub fn allow(&mut self, path: &Path, access: Access) -> std::io::Result<()> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path with a NUL byte"))?;
        // SAFETY: valid NUL-terminated path.
        let raw = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if raw < 0 {
            let err = std::io::Error::last_os_error();
            return Err(std::io::Error::new(err.kind(), format!("landlock rule for {}: {err}", path.display())));
        }
        // SAFETY: just opened.
        let path_fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let is_dir = std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false);
        if add_rule(self.fd.as_raw_fd(), path_fd.as_raw_fd(), self.rights(access, is_dir)) < 0 {
            let err = std::io::Error::last_os_error();
            return Err(std::io::Error::new(err.kind(), format!("landlock rule for {}: {err}", path.display())));
        }
        Ok(())
    }

    /// The rights a rule of this kind carries (a rule on a non-directory may only carry file rights).
    pub fn rights(&self, access: Access, is_dir: bool) -> u64 {
        let file_rights = FS_EXECUTE | FS_READ_FILE | FS_WRITE_FILE | (self.handled_fs & (FS_TRUNCATE | FS_IOCTL_DEV));
        let wanted = match access {
            Access::ReadExec => FS_EXECUTE | FS_READ_FILE | FS_READ_DIR,
            Access::ReadWriteFile => FS_READ_FILE | FS_WRITE_FILE | (self.handled_fs & (FS_TRUNCATE | FS_IOCTL_DEV)),
            Access::Full => self.handled_fs,
        };
        if is_dir { wanted } else { wanted & file_rights }
    }

    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// Adds a path-beneath rule. Async-signal-safe, so the child can add rules for the mounts it
/// makes itself (a rule on a mount point does not reach the filesystem mounted over it).
pub fn add_rule(ruleset_fd: i32, path_fd: i32, rights: u64) -> i64 {
    let attr = PathBeneathAttr { allowed_access: rights, parent_fd: path_fd };
    // SAFETY: attr is a valid packed landlock_path_beneath_attr.
    unsafe { libc::syscall(libc::SYS_landlock_add_rule, ruleset_fd, RULE_PATH_BENEATH, &attr as *const PathBeneathAttr, 0u32) }
}

/// Applies the ruleset to the calling thread. Async-signal-safe: raw syscalls only.
/// `no_new_privs` must be set before (the caller does it).
pub fn restrict_self(ruleset_fd: i32) -> i64 {
    // SAFETY: plain syscall on an fd the caller owns.
    unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset_fd, 0u32) }
}
