//! Adversarial programs against the sandbox. Each runs as a HumanEval-form candidate `f`
//! (checked by `assert candidate() == 1`) with tight limits, all in parallel with an honest
//! task that must still score 1; then the host side is checked: no file written, no canary
//! leaked, no connection received, no process of the sandbox's uids left.

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r1kit_rewards::code::{CodePool, CodeResult, FailureKind, Limits, Python, PythonRunner, Sandbox, SandboxConfig};

const UID_BASE: u32 = 2_000_100_000;
const SLOTS: usize = 16;
const WALL: Duration = Duration::from_secs(3);

const CHECK: &str = "def check(candidate):\n    assert candidate() == 1\n";

struct Attack {
    name: &'static str,
    program: String,
    /// The failure kinds the result may give (any of them); empty means the honest score is a pass.
    expect: Vec<FailureKind>,
}

fn attack(name: &'static str, body: &str, expect: &[FailureKind]) -> Attack {
    let indented: String = body.lines().map(|l| format!("    {l}\n")).collect();
    Attack { name, program: format!("def f():\n{indented}"), expect: expect.to_vec() }
}

/// Processes owned by any of the sandbox's uids, from /proc.
fn sandbox_processes() -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let uid: Option<u32> = status.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)).and_then(|u| u.parse().ok());
        if let Some(uid) = uid
            && (UID_BASE..UID_BASE + SLOTS as u32).contains(&uid)
        {
            found.push(format!("pid {} uid {uid}: {}", entry.file_name().to_string_lossy(), status.lines().next().unwrap_or("")));
        }
    }
    found
}

fn unique(tag: &str) -> String {
    format!("r1kit-{tag}-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos())
}

#[test]
fn adversarial_programs_are_contained() {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()));
    let cwd = std::env::current_dir().unwrap();
    let escape_paths: Vec<PathBuf> = vec![
        std::env::temp_dir().join(unique("escape")),
        home.join(unique("escape")),
        cwd.join(unique("escape")),
    ];
    // Canaries: one in the home directory, one world-readable in /tmp (so that only Landlock,
    // not file permissions, stands between the program and it).
    let canary_text = format!("CANARY-{}", unique("secret"));
    let canaries = [home.join(unique("canary")), std::env::temp_dir().join(unique("canary"))];
    for canary in &canaries {
        std::fs::write(canary, &canary_text).unwrap();
        std::fs::set_permissions(canary, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let writes: String = escape_paths
        .iter()
        .map(|p| format!("try:\n    open({:?}, 'w').write('escaped')\n    wrote += 1\nexcept OSError:\n    pass\n", p.display().to_string()))
        .collect();
    let reads: String = canaries
        .iter()
        .map(|p| format!("try:\n    leaked.append(open({:?}).read())\nexcept OSError as e:\n    print('denied', e)\n", p.display().to_string()))
        .collect();
    let attacks = vec![
        attack("honest", "return 1", &[]),
        attack("fork bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", &[FailureKind::Timeout]),
        attack("infinite loop", "while True:\n    pass", &[FailureKind::CpuLimit, FailureKind::Timeout]),
        attack("memory bomb", "x = bytearray(8 << 30)\nreturn 1", &[FailureKind::MemoryLimit]),
        attack("growing memory", "x = []\nwhile True:\n    x.append(bytearray(1 << 20))", &[FailureKind::MemoryLimit, FailureKind::Timeout]),
        attack("sleep forever", "import time\ntime.sleep(10**6)", &[FailureKind::Timeout]),
        attack(
            "double-forked daemon",
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(10**6)\n    os._exit(0)\nos.wait()\nreturn 1",
            &[],
        ),
        // The program's parent is the namespace's root-owned init (pid 1): killing it is
        // refused (EPERM), and nothing outside the PID namespace is visible. Honest 0.
        attack(
            "kill parent and group",
            "import os\nif os.fork() == 0:\n    os.killpg(os.getpgrp(), 9)\nos.wait()\nos.kill(os.getppid(), 9)\nreturn 1",
            // killpg from the child kills the program itself (its own group): Killed is honest too.
            &[FailureKind::RuntimeError, FailureKind::Killed],
        ),
        attack("kill everything", "import os\nos.kill(-1, 9)\nreturn 1", &[FailureKind::RuntimeError, FailureKind::Killed]),
        attack("write outside", &format!("wrote = 0\n{writes}return 1 if wrote else 0"), &[FailureKind::WrongAnswer]),
        attack("read canary", &format!("leaked = []\n{reads}print(leaked)\nreturn 1 if leaked else 0"), &[FailureKind::WrongAnswer]),
        attack(
            "connect to host",
            &format!("import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n    return 1\nexcept OSError as e:\n    print('no connection', e)\n    return 0"),
            &[FailureKind::WrongAnswer],
        ),
        attack("print gigabytes", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)", &[FailureKind::OutputLimit]),
        attack("fill the disk", "i = 0\nwhile True:\n    open(f'fill{i}', 'wb').write(b'x' * (1 << 19))\n    i += 1", &[FailureKind::FileSizeLimit]),
        attack("one huge file", "f = open('big', 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n    f.flush()", &[FailureKind::FileSizeLimit]),
    ];

    let sandbox = Arc::new(Sandbox::new(SandboxConfig { uid_base: UID_BASE, slots: SLOTS, ..Default::default() }).expect("sandbox"));
    let limits = Limits {
        wall: WALL,
        cpu_secs: 2,
        address_space_bytes: 512 << 20,
        file_size_bytes: 4 << 20,
        processes: 16,
        output_bytes: 64 << 10,
        work_dir_bytes: 8 << 20,
        ..Default::default()
    };
    let python = Python::find(None).unwrap();
    let runner = PythonRunner::new(sandbox.clone(), python.clone(), limits.clone());
    let pool = CodePool::new(SLOTS).unwrap();
    let started = Instant::now();
    // A raw run that prints whatever it can read: the canary must be in neither stream.
    let read_all = format!(
        "import os\nfor p in {:?}:\n    try:\n        print(open(p).read())\n    except OSError as e:\n        print(e)",
        canaries.iter().map(|c| c.display().to_string()).collect::<Vec<_>>()
    );
    let raw = r1kit_rewards::code::Job {
        exe: python.executable.display().to_string(),
        args: vec!["-I".into(), "-c".into(), read_all],
        read_paths: python.read_paths.clone(),
        limits: limits.clone(),
        ..Default::default()
    };
    let raw_out = sandbox.run(&raw).unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&raw_out.stdout), String::from_utf8_lossy(&raw_out.stderr));
    assert!(raw_out.success() && stdout.contains("Permission denied"), "{stdout} {stderr}");
    assert!(!stdout.contains(&canary_text) && !stderr.contains(&canary_text), "canary leaked: {stdout}");

    let results: Vec<(CodeResult, Duration)> = pool.map(&attacks, |a| {
        let t = Instant::now();
        (runner.humaneval(&a.program, CHECK, "f").unwrap(), t.elapsed())
    });
    let total_wall = started.elapsed();

    let mut problems = Vec::new();
    for (a, (result, took)) in attacks.iter().zip(&results) {
        eprintln!("{:<22} {:>6.2}s  {}", a.name, took.as_secs_f64(), result.summary());
        let kind = result.failure.as_ref().map(|f| f.kind);
        if a.expect.is_empty() && !result.all_passed() {
            problems.push(format!("{}: expected an honest pass, got {}", a.name, result.summary()));
        }
        if !a.expect.is_empty() && (result.passed != 0 || !kind.is_some_and(|k| a.expect.contains(&k))) {
            problems.push(format!("{}: expected 0 and one of {:?}, got {}", a.name, a.expect, result.summary()));
        }
        if *took > WALL + Duration::from_secs(2) {
            problems.push(format!("{}: took {took:?}, past the wall limit", a.name));
        }
        let detail = result.failure.as_ref().map(|f| f.detail.clone()).unwrap_or_default();
        if detail.contains(&canary_text) {
            problems.push(format!("{}: canary leaked into the result", a.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(total_wall < WALL * 3, "the suite ran serially? {total_wall:?}");

    // Host side.
    for path in &escape_paths {
        assert!(!path.exists(), "{} was written from the sandbox", path.display());
    }
    assert!(listener.accept().is_err(), "the sandbox connected to the host's listener");
    let stray = sandbox_processes();
    assert!(stray.is_empty(), "processes left behind:\n{}", stray.join("\n"));
    for canary in &canaries {
        std::fs::remove_file(canary).unwrap();
    }
    // The host still works normally after all that.
    std::io::stderr().flush().unwrap();
    assert!(Path::new(&cwd).exists());
}
