//! One untrusted program per run, confined with every mechanism the kernel offers; none is
//! optional: when one is missing the run fails with a message instead of running unconfined.
//!
//! Process layout (r1kit runs as root):
//!
//! ```text
//! r1kit ──spawn──> supervisor S (root, r1kit's namespaces): unshare(PID|NET|NS|IPC|UTS), fork
//!                      └──> init G (pid 1 of the new PID namespace, root): mounts, fork, reap
//!                             └──> program P: rlimits, setgroups/setgid/setuid(sandbox uid),
//!                                  no_new_privs, landlock, exec
//! ```
//!
//! S waits for G with its own wall clock and SIGKILLs G at the limit (or on SIGTERM from r1kit,
//! used for the output cap). When G, the namespace's init, dies the kernel kills every process
//! left in the namespace, so double-forked daemons die with it. G has PDEATHSIG=SIGKILL, and
//! r1kit SIGKILLs S as a backstop if S overstays. The work directory is a size-capped tmpfs
//! mounted inside the new mount namespace: the only writable place, gone with the namespace.
//! Each concurrent run gets its own uid from a pool, because RLIMIT_NPROC counts processes per
//! uid system-wide: a fork bomb in one run must not starve the others.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::landlock::{self, Access, Ruleset};

/// Resource limits of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Wall-clock limit; the whole process tree is killed at it.
    pub wall: Duration,
    /// RLIMIT_CPU in seconds (SIGXCPU at the limit, SIGKILL one second later).
    pub cpu_secs: u64,
    /// RLIMIT_AS, bytes of address space per process.
    pub address_space_bytes: u64,
    /// RLIMIT_FSIZE, the largest file a process may write.
    pub file_size_bytes: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_NPROC: processes of the run's uid (each run has its own uid).
    pub processes: u64,
    /// stdout and stderr are each kept up to this many bytes; more kills the run.
    pub output_bytes: usize,
    /// Size of the tmpfs work directory, the only writable place.
    pub work_dir_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(10),
            cpu_secs: 10,
            address_space_bytes: 1 << 30,
            file_size_bytes: 16 << 20,
            open_files: 64,
            processes: 32,
            output_bytes: 1 << 20,
            work_dir_bytes: 64 << 20,
        }
    }
}

/// Sandbox-wide settings.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// First uid (and gid) of the pool; run slots use `uid_base..uid_base + slots`.
    pub uid_base: u32,
    /// How many runs may be in flight at once (each holds one uid).
    pub slots: usize,
    /// Where run directories are created.
    pub tmp_root: PathBuf,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        let slots = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        SandboxConfig { uid_base: 2_000_000_000, slots: slots.max(1) * 2, tmp_root: std::env::temp_dir() }
    }
}

/// A program to run: `exe` and `args` may use the placeholders `{src}` (read-only directory
/// holding `files`), `{work}` (the writable tmpfs, also the working directory) and `{mnt}`
/// (where `binds` are mounted read-only, each as `{mnt}/<name>`).
#[derive(Debug, Clone, Default)]
pub struct Job {
    pub exe: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Files written into `{src}` (name, content); readable, not writable, by the program.
    pub files: Vec<(String, Vec<u8>)>,
    pub stdin: Vec<u8>,
    /// Paths the program may read and execute (the interpreter's installation).
    pub read_paths: Vec<PathBuf>,
    /// (host directory, name): bind-mounted read-only at `{mnt}/<name>`, for toolchains in
    /// directories the sandbox uid cannot traverse (e.g. under /root).
    pub binds: Vec<(PathBuf, String)>,
    pub limits: Limits,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    Exited(i32),
    /// Killed by a signal of its own making or a limit: SIGXCPU/SIGKILL (CPU), SIGXFSZ (file size), SIGSEGV...
    Signaled(i32),
    /// Killed at the wall-clock limit.
    WallTimeout,
    /// Killed because stdout or stderr passed the output cap.
    OutputLimit,
}

#[derive(Debug, Clone)]
pub struct RunOutput {
    pub termination: Termination,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub wall: Duration,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.termination == Termination::Exited(0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("code sandbox unavailable: {0}")]
    Unavailable(String),
    #[error("code sandbox setup failed at `{step}`: {source}")]
    Setup { step: &'static str, source: io::Error },
    #[error("code sandbox I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Steps of the in-child setup, reported back through a pipe when one fails.
const STEPS: [&str; 15] = [
    "unshare(PID|NET|NS|IPC|UTS)",
    "fork namespace init",
    "setsid",
    "make mounts private",
    "mount tmpfs work directory",
    "bind-mount toolchain",
    "remount toolchain read-only",
    "mount /proc",
    "chdir work directory",
    "setrlimit",
    "setgroups/setgid/setuid",
    "dropping root could be undone",
    "prctl(NO_NEW_PRIVS)",
    "landlock_restrict_self",
    "landlock rule for the work tmpfs or /proc",
];

/// The sandbox: checks the kernel's mechanisms once, then runs jobs.
pub struct Sandbox {
    config: SandboxConfig,
    landlock_abi: i32,
    free_uids: Mutex<Vec<u32>>,
    uid_returned: Condvar,
    run_dir_root: PathBuf,
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Sandbox {
    /// Checks privileges and Landlock, then runs `/bin/true` through the full sandbox so that a
    /// missing mechanism fails here, with the step that failed, and not in the middle of RL.
    pub fn new(config: SandboxConfig) -> Result<Self, SandboxError> {
        // SAFETY: trivial getter.
        if unsafe { libc::geteuid() } != 0 {
            return Err(SandboxError::Unavailable(format!(
                "r1kit must run as root to switch untrusted code to an unprivileged uid and to create \
                 PID/network/mount namespaces (running as uid {})",
                unsafe { libc::geteuid() }
            )));
        }
        let landlock_abi = landlock::abi_version().ok_or_else(|| {
            SandboxError::Unavailable("the kernel offers no Landlock (needed to limit what code may read)".into())
        })?;
        if config.slots == 0 {
            return Err(SandboxError::Unavailable("zero sandbox slots".into()));
        }
        let run_dir_root =
            config.tmp_root.join(format!("r1kit-code-{}-{}", std::process::id(), RUN_COUNTER.fetch_add(1, Ordering::Relaxed)));
        fs::DirBuilder::new()
            .mode(0o711)
            .create(&run_dir_root)
            .map_err(|source| SandboxError::Io { path: run_dir_root.clone(), source })?;
        let free_uids = (0..config.slots as u32).map(|i| config.uid_base + i).rev().collect();
        let sandbox = Sandbox { config, landlock_abi, free_uids: Mutex::new(free_uids), uid_returned: Condvar::new(), run_dir_root };
        let probe = Job { exe: "/bin/true".into(), ..Default::default() };
        let out = sandbox.run(&probe)?;
        if !out.success() {
            return Err(SandboxError::Unavailable(format!(
                "probe /bin/true in the sandbox ended with {:?}: {}",
                out.termination,
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(sandbox)
    }

    pub fn landlock_abi(&self) -> i32 {
        self.landlock_abi
    }

    pub fn slots(&self) -> usize {
        self.config.slots
    }

    /// Runs one job; blocks while all uid slots are busy.
    pub fn run(&self, job: &Job) -> Result<RunOutput, SandboxError> {
        let uid = self.acquire_uid();
        let result = self.run_as(job, uid);
        self.release_uid(uid);
        result
    }

    fn acquire_uid(&self) -> u32 {
        let mut free = self.free_uids.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(uid) = free.pop() {
                return uid;
            }
            free = self.uid_returned.wait(free).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn release_uid(&self, uid: u32) {
        self.free_uids.lock().unwrap_or_else(|p| p.into_inner()).push(uid);
        self.uid_returned.notify_one();
    }

    fn run_as(&self, job: &Job, uid: u32) -> Result<RunOutput, SandboxError> {
        let run_dir = self.run_dir_root.join(format!("run-{}", RUN_COUNTER.fetch_add(1, Ordering::Relaxed)));
        let dirs = RunDirs::create(&run_dir, job)?;
        let result = self.spawn_and_wait(job, uid, &dirs);
        let _ = fs::remove_dir_all(&run_dir);
        result
    }

    fn spawn_and_wait(&self, job: &Job, uid: u32, dirs: &RunDirs) -> Result<RunOutput, SandboxError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxError::Io { path, source }
        };
        let expand = |s: &str| {
            s.replace("{src}", &dirs.src.to_string_lossy())
                .replace("{work}", &dirs.work.to_string_lossy())
                .replace("{mnt}", &dirs.mnt.to_string_lossy())
        };

        let mut ruleset = Ruleset::new(self.landlock_abi).map_err(|source| SandboxError::Setup { step: "landlock ruleset", source })?;
        let mut allow = |path: &Path, access| {
            ruleset.allow(path, access).map_err(|source| SandboxError::Setup { step: "landlock rule", source })
        };
        for path in BASE_READ_PATHS.iter().map(Path::new).chain(job.read_paths.iter().map(PathBuf::as_path)) {
            if path.exists() {
                allow(path, Access::ReadExec)?;
            }
        }
        for dev in ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"] {
            if Path::new(dev).exists() {
                allow(Path::new(dev), Access::ReadWriteFile)?;
            }
        }
        allow(&dirs.src, Access::ReadExec)?;
        allow(&dirs.mnt, Access::ReadExec)?;
        // The work tmpfs and the private /proc get their rules in the child, once mounted.
        let mount_rights = (ruleset.rights(Access::Full, true), ruleset.rights(Access::ReadExec, true));
        let setup = ChildSetup::new(job, uid, dirs, ruleset.raw_fd(), mount_rights)?;
        let (report_read, report_write) = cloexec_pipe().map_err(|source| SandboxError::Setup { step: "report pipe", source })?;
        let report_fd = report_write.as_raw_fd();

        let stdin = File::open(&dirs.stdin).map_err(io_err(&dirs.stdin))?;
        let mut command = Command::new(expand(&job.exe));
        command
            .args(job.args.iter().map(|a| expand(a)))
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &dirs.work)
            .env("TMPDIR", &dirs.work)
            .env("LANG", "C.UTF-8")
            .envs(job.env.iter().map(|(k, v)| (k.clone(), expand(v))))
            .current_dir(&dirs.src)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: the closure only makes raw syscalls on data prepared before fork.
        unsafe {
            command.pre_exec(move || setup.enter(report_fd));
        }
        let start = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(spawn_err) => {
                drop(report_write);
                return Err(match read_report(report_read).failed_step {
                    Some((step, errno)) => SandboxError::Setup { step, source: io::Error::from_raw_os_error(errno) },
                    None => SandboxError::Setup { step: "spawn", source: spawn_err },
                });
            }
        };
        drop(report_write);
        drop(ruleset);

        let supervisor_pid = child.id() as i32;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let backstop = start + job.limits.wall + Duration::from_secs(2);
        let collected = collect_output(supervisor_pid, stdout.as_raw_fd(), stderr.as_raw_fd(), job.limits.output_bytes, backstop);
        let status = child.wait().map_err(|source| SandboxError::Setup { step: "wait", source })?;
        let wall = start.elapsed();
        let report = read_report(report_read);
        if let Some((step, errno)) = report.failed_step {
            return Err(SandboxError::Setup { step, source: io::Error::from_raw_os_error(errno) });
        }
        let termination = if collected.output_exceeded {
            Termination::OutputLimit
        } else if report.wall_timeout || collected.backstop_fired {
            Termination::WallTimeout
        } else if let Some((kind, value)) = report.init_status {
            if kind == b'E' { Termination::Exited(value) } else { Termination::Signaled(value) }
        } else if let Some(sig) = status.signal() {
            Termination::Signaled(sig)
        } else {
            Termination::Exited(status.code().unwrap_or(-1))
        };
        Ok(RunOutput { termination, stdout: collected.stdout, stderr: collected.stderr, wall })
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.run_dir_root);
    }
}

/// Read-only system paths every program gets (interpreters, shared libraries, the linker's
/// cache). Not /etc, /home, /root, /tmp, /var or /dev beyond the few devices added per run.
const BASE_READ_PATHS: [&str; 6] = ["/usr", "/lib", "/lib64", "/bin", "/etc/ld.so.cache", "/etc/alternatives"];

/// Per-run directory layout: `src` (root-owned, read-only files), `work` (tmpfs mount point),
/// `mnt/<name>` (bind mount points), `stdin`.
struct RunDirs {
    src: PathBuf,
    work: PathBuf,
    mnt: PathBuf,
    stdin: PathBuf,
}

impl RunDirs {
    fn create(run_dir: &Path, job: &Job) -> Result<Self, SandboxError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SandboxError::Io { path, source }
        };
        let dirs = RunDirs { src: run_dir.join("src"), work: run_dir.join("work"), mnt: run_dir.join("mnt"), stdin: run_dir.join("stdin") };
        for (dir, mode) in [(run_dir, 0o711), (&dirs.src, 0o755), (&dirs.work, 0o700), (&dirs.mnt, 0o755)] {
            fs::DirBuilder::new().mode(mode).create(dir).map_err(io_err(dir))?;
        }
        for (_, name) in &job.binds {
            let point = dirs.mnt.join(name);
            fs::DirBuilder::new().mode(0o755).create(&point).map_err(io_err(&point))?;
        }
        for (name, content) in &job.files {
            let path = dirs.src.join(name);
            fs::write(&path, content).map_err(io_err(&path))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(io_err(&path))?;
        }
        fs::write(&dirs.stdin, &job.stdin).map_err(io_err(&dirs.stdin))?;
        Ok(dirs)
    }
}

/// Everything the child needs, prepared before fork so that the child allocates nothing.
struct ChildSetup {
    uid: u32,
    work: CString,
    tmpfs_options: CString,
    binds: Vec<(CString, CString)>,
    rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    wall: libc::timespec,
    ruleset_fd: i32,
    /// Landlock rights for the work tmpfs and for /proc.
    mount_rights: (u64, u64),
}

fn c_path(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| SandboxError::Io {
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"),
    })
}

impl ChildSetup {
    fn new(job: &Job, uid: u32, dirs: &RunDirs, ruleset_fd: i32, mount_rights: (u64, u64)) -> Result<Self, SandboxError> {
        let l = &job.limits;
        let tmpfs_options =
            CString::new(format!("size={},nr_inodes=4096,mode=0700,uid={uid},gid={uid}", l.work_dir_bytes)).expect("no NUL");
        let mut binds = Vec::new();
        for (host, name) in &job.binds {
            binds.push((c_path(host)?, c_path(&dirs.mnt.join(name))?));
        }
        Ok(ChildSetup {
            uid,
            work: c_path(&dirs.work)?,
            tmpfs_options,
            binds,
            rlimits: vec![
                (libc::RLIMIT_CPU, l.cpu_secs, l.cpu_secs + 1),
                (libc::RLIMIT_AS, l.address_space_bytes, l.address_space_bytes),
                (libc::RLIMIT_FSIZE, l.file_size_bytes, l.file_size_bytes),
                (libc::RLIMIT_NOFILE, l.open_files, l.open_files),
                (libc::RLIMIT_NPROC, l.processes, l.processes),
                (libc::RLIMIT_CORE, 0, 0),
                (libc::RLIMIT_MEMLOCK, 0, 0),
            ],
            wall: libc::timespec { tv_sec: l.wall.as_secs() as libc::time_t, tv_nsec: l.wall.subsec_nanos() as libc::c_long },
            ruleset_fd,
            mount_rights,
        })
    }

    /// Runs in the forked child (the supervisor S): raw syscalls only. Returns (in G only) to
    /// let std exec the program.
    fn enter(&self, report_fd: i32) -> io::Result<()> {
        // SAFETY (whole function): raw syscalls on pre-built C strings and plain integers.
        unsafe {
            let fail = |step: usize| -> io::Error {
                let errno = *libc::__errno_location();
                let mut record = [0u8; 6];
                record[0] = b'F';
                record[1] = step as u8;
                record[2..6].copy_from_slice(&errno.to_le_bytes());
                libc::write(report_fd, record.as_ptr().cast(), record.len());
                io::Error::from_raw_os_error(errno)
            };
            // r1kit dying must take the supervisor with it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            let flags = libc::CLONE_NEWPID | libc::CLONE_NEWNET | libc::CLONE_NEWNS | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
            if libc::unshare(flags) != 0 {
                return Err(fail(0));
            }
            // Block SIGCHLD/SIGTERM before fork so that S can wait for them with sigtimedwait.
            let mut waited: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut waited);
            libc::sigaddset(&mut waited, libc::SIGCHLD);
            libc::sigaddset(&mut waited, libc::SIGTERM);
            libc::sigprocmask(libc::SIG_BLOCK, &waited, std::ptr::null_mut());
            let pid = libc::fork();
            if pid < 0 {
                return Err(fail(1));
            }
            if pid > 0 {
                supervise(pid, report_fd, &waited, self.wall);
            }
            // G: pid 1 of the new namespaces.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            if libc::setsid() < 0 {
                return Err(fail(2));
            }
            let null = std::ptr::null::<libc::c_char>();
            if libc::mount(null, c"/".as_ptr(), null, libc::MS_REC | libc::MS_PRIVATE, std::ptr::null()) != 0 {
                return Err(fail(3));
            }
            if libc::mount(
                c"tmpfs".as_ptr(),
                self.work.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                self.tmpfs_options.as_ptr().cast(),
            ) != 0
            {
                return Err(fail(4));
            }
            for (host, point) in &self.binds {
                if libc::mount(host.as_ptr(), point.as_ptr(), null, libc::MS_BIND | libc::MS_REC, std::ptr::null()) != 0 {
                    return Err(fail(5));
                }
                let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
                if libc::mount(null, point.as_ptr(), null, ro, std::ptr::null()) != 0 {
                    return Err(fail(6));
                }
            }
            if libc::mount(
                c"proc".as_ptr(),
                c"/proc".as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ) != 0
            {
                return Err(fail(7));
            }
            if libc::chdir(self.work.as_ptr()) != 0 {
                return Err(fail(8));
            }
            for (dir, rights) in [(self.work.as_ptr(), self.mount_rights.0), (c"/proc".as_ptr(), self.mount_rights.1)] {
                let fd = libc::open(dir, libc::O_PATH | libc::O_CLOEXEC);
                if fd < 0 || landlock::add_rule(self.ruleset_fd, fd, rights) < 0 {
                    return Err(fail(14));
                }
                libc::close(fd);
            }
            // G stays root and runs no untrusted code: it is the namespace's init, which the
            // kernel shields from signals it has no handler for (SIGXCPU included), so the
            // program runs as its child P and G only reaps and reports.
            let (lo, hi) = (report_fd.min(self.ruleset_fd), report_fd.max(self.ruleset_fd));
            keep_only_fds(&[lo, hi]);
            let program = libc::fork();
            if program < 0 {
                return Err(fail(1));
            }
            if program > 0 {
                init_wait(program, report_fd);
            }
            // P: the program.
            if libc::setsid() < 0 {
                return Err(fail(2));
            }
            for &(resource, soft, hard) in &self.rlimits {
                let limit = libc::rlimit { rlim_cur: soft, rlim_max: hard };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(fail(9));
                }
            }
            if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(self.uid) != 0 || libc::setuid(self.uid) != 0 {
                return Err(fail(10));
            }
            if libc::setuid(0) == 0 || libc::getuid() != self.uid || libc::geteuid() != self.uid {
                return Err(fail(11));
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(fail(12));
            }
            if landlock::restrict_self(self.ruleset_fd) != 0 {
                return Err(fail(13));
            }
            // setuid cleared PDEATHSIG: set it again, so that S dying kills the namespace.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32);
        }
        Ok(())
    }
}

/// The supervisor's whole life after fork: wait for G up to the wall limit (or r1kit's
/// SIGTERM), SIGKILL it then, report how G ended, exit. Never returns.
unsafe fn supervise(init_pid: i32, report_fd: i32, waited: &libc::sigset_t, wall: libc::timespec) -> ! {
    unsafe {
        keep_only_fds(&[report_fd]);
        libc::close(0);
        let mut deadline: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut deadline);
        deadline.tv_sec += wall.tv_sec;
        deadline.tv_nsec += wall.tv_nsec;
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1;
            deadline.tv_nsec -= 1_000_000_000;
        }
        let mut status = 0;
        let mut timed_out = false;
        loop {
            let r = libc::waitpid(init_pid, &mut status, libc::WNOHANG);
            if r == init_pid {
                break;
            }
            let mut now: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now);
            let mut left_ns = (deadline.tv_sec - now.tv_sec) as i64 * 1_000_000_000 + (deadline.tv_nsec - now.tv_nsec) as i64;
            let mut stop = left_ns <= 0;
            if !stop {
                left_ns = left_ns.min(100_000_000); // re-check waitpid at least every 100 ms
                let timeout = libc::timespec { tv_sec: 0, tv_nsec: left_ns as libc::c_long };
                let sig = libc::sigtimedwait(waited, std::ptr::null_mut(), &timeout);
                stop = sig == libc::SIGTERM;
            }
            if stop {
                timed_out = true;
                libc::kill(init_pid, libc::SIGKILL);
                while libc::waitpid(init_pid, &mut status, 0) < 0 && *libc::__errno_location() == libc::EINTR {}
                break;
            }
        }
        if timed_out {
            libc::write(report_fd, b"T".as_ptr().cast(), 1);
        }
        libc::_exit(0);
    }
}

/// Closes every fd above stdio but `keep` (sorted ascending): holding std's exec-status pipe
/// would make r1kit's spawn() wait for the whole run.
unsafe fn keep_only_fds(keep: &[i32]) {
    let mut next = 3;
    for &fd in keep {
        if fd > next {
            // SAFETY: closing fds of this process.
            unsafe { libc::close_range(next as u32, (fd - 1) as u32, 0) };
        }
        next = next.max(fd + 1);
    }
    // SAFETY: as above.
    unsafe { libc::close_range(next as u32, u32::MAX, 0) };
}

/// The namespace init's life after forking the program: reap every child (orphans included)
/// until the program ends, report its status, exit, which kills whatever is left in the
/// namespace. Never returns.
unsafe fn init_wait(program: i32, report_fd: i32) -> ! {
    unsafe {
        let mut status = 0;
        loop {
            let r = libc::waitpid(-1, &mut status, 0);
            if r == program {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(1);
            }
        }
        let mut record = [0u8; 5];
        if libc::WIFEXITED(status) {
            record[0] = b'E';
            record[1..5].copy_from_slice(&libc::WEXITSTATUS(status).to_le_bytes());
        } else {
            record[0] = b'S';
            record[1..5].copy_from_slice(&libc::WTERMSIG(status).to_le_bytes());
        }
        libc::write(report_fd, record.as_ptr().cast(), record.len());
        libc::_exit(0);
    }
}

fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: fds is a valid out-array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both fds were just created.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[derive(Default)]
struct Report {
    failed_step: Option<(&'static str, i32)>,
    wall_timeout: bool,
    init_status: Option<(u8, i32)>,
}

/// Parses the records the supervisor and init wrote: `F step errno`, `T`, `E code`, `S signal`.
fn read_report(read_end: OwnedFd) -> Report {
    let mut bytes = Vec::new();
    let _ = File::from(read_end).read_to_end(&mut bytes);
    let mut report = Report::default();
    let mut rest = bytes.as_slice();
    while let Some((&tag, tail)) = rest.split_first() {
        let int = |b: &[u8]| b.get(..4).map(|x| i32::from_le_bytes([x[0], x[1], x[2], x[3]]));
        match tag {
            b'F' if tail.len() >= 5 => {
                report.failed_step = Some((STEPS.get(tail[0] as usize).copied().unwrap_or("unknown step"), int(&tail[1..]).unwrap_or(0)));
                rest = &tail[5..];
            }
            b'T' => {
                report.wall_timeout = true;
                rest = tail.get(4..).unwrap_or(&[]);
            }
            b'E' | b'S' if tail.len() >= 4 => {
                report.init_status = Some((tag, int(tail).unwrap_or(0)));
                rest = &tail[4..];
            }
            _ => break,
        }
    }
    report
}

struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    output_exceeded: bool,
    backstop_fired: bool,
}

/// Reads stdout and stderr until both close, keeping `cap` bytes of each. Past the cap it asks
/// the supervisor to kill the run (SIGTERM) and discards the rest; past `backstop` it SIGKILLs
/// the supervisor (whose death kills the namespace through PDEATHSIG).
fn collect_output(supervisor: i32, out_fd: i32, err_fd: i32, cap: usize, backstop: Instant) -> Collected {
    let mut c = Collected { stdout: Vec::new(), stderr: Vec::new(), output_exceeded: false, backstop_fired: false };
    let mut open = [true, true];
    let mut buf = vec![0u8; 64 << 10];
    while open[0] || open[1] {
        let mut pollfds = [
            libc::pollfd { fd: if open[0] { out_fd } else { -1 }, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: if open[1] { err_fd } else { -1 }, events: libc::POLLIN, revents: 0 },
        ];
        let left = backstop.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if !c.backstop_fired {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(supervisor, libc::SIGKILL) };
                c.backstop_fired = true;
            }
        }
        let timeout_ms = if c.backstop_fired { 1000 } else { left.as_millis().clamp(1, 1000) as i32 };
        // SAFETY: valid pollfd array.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), 2, timeout_ms) };
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        for (i, pfd) in pollfds.iter().enumerate() {
            if !open[i] || pfd.revents == 0 {
                continue;
            }
            // SAFETY: reading into our buffer from a pipe we own.
            let got = unsafe { libc::read(pfd.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if got <= 0 {
                if got < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                open[i] = false;
                continue;
            }
            let sink = if i == 0 { &mut c.stdout } else { &mut c.stderr };
            let room = cap.saturating_sub(sink.len());
            sink.extend_from_slice(&buf[..(got as usize).min(room)]);
            if got as usize > room && !c.output_exceeded {
                c.output_exceeded = true;
                // SAFETY: signalling our own child; it kills the namespace's init.
                unsafe { libc::kill(supervisor, libc::SIGTERM) };
            }
        }
    }
    c
}

/// Whether the sandbox uid can reach and execute `path` (every directory above it must be
/// world-searchable): interpreters under /root (pyenv, rustup) are not.
pub fn world_executable(path: &Path) -> bool {
    let Ok(real) = fs::canonicalize(path) else { return false };
    let Ok(meta) = fs::metadata(&real) else { return false };
    if meta.permissions().mode() & 0o001 == 0 {
        return false;
    }
    real.ancestors().skip(1).all(|dir| fs::metadata(dir).map(|m| m.permissions().mode() & 0o001 != 0).unwrap_or(false))
}
