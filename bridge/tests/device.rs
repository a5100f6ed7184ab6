//! The TUN device as the daemon leaves it: name, addresses, MTU, up, no packet-info
//! header, IPv6 quiet (no link-local address, no DAD, no router solicitations) or off,
//! and a descriptor that is non-blocking and closed on exec.
//!
//! Needs root: each test makes its own network namespace, starts the daemon inside it
//! and only looks at the device there (see `common`).

mod common;

use common::*;

/// The output of `ip -n NS ARGS...`, which must succeed.
fn ip(ns: &Netns, args: &[&str]) -> String {
    let out = ns.exec(&[&["ip"], args].concat());
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts that `text` (a command's output) contains `needle`.
fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}

/// The device's IPv6 settings that the daemon writes, as `key=value` lines.
fn ipv6_sysctls(ns: &Netns) -> String {
    let keys = [
        "disable_ipv6",
        "accept_dad",
        "dad_transmits",
        "router_solicitations",
        "accept_ra",
        "addr_gen_mode",
    ];
    keys.iter()
        .map(|key| {
            let path = format!("/proc/sys/net/ipv6/conf/tun0/{key}");
            let out = ns.exec(&["cat", &path]);
            format!("{key}={}", String::from_utf8_lossy(&out.stdout).trim())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The open-file flags (octal, from `/proc/PID/fdinfo`) of the daemon's TUN descriptor.
fn tun_fd_flags(pid: u32) -> u32 {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap();
    let fd = fds
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_link(p).is_ok_and(|t| t.as_os_str() == "/dev/net/tun"))
        .expect("the daemon holds /dev/net/tun open");
    let name = fd.file_name().unwrap().to_str().unwrap();
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{name}")).unwrap();
    let flags = info
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .expect("flags line");
    u32::from_str_radix(flags.trim(), 8).unwrap()
}

#[test]
#[ignore = "needs root"]
fn the_device_is_up_with_its_addresses_and_ipv6_kept_quiet() {
    let (ns, _dir, mut bridge) = root_bridge("devcfg", &[]);
    let link = ip(&ns, &["-d", "link", "show", "tun0"]);
    assert_has(&link, ",UP,LOWER_UP>");
    assert_has(&link, " mtu 1500 ");
    assert_has(&link, "tun type tun pi off vnet_hdr off");
    assert_has(&link, "addrgenmode none");
    let addr = ip(&ns, &["addr", "show", "dev", "tun0"]);
    assert_has(&addr, "inet 192.0.2.1/24 scope global tun0");
    assert_has(&addr, "inet6 2001:db8::1/64 scope global nodad");
    assert!(!addr.contains("fe80"), "no link-local address: {addr}");
    assert_eq!(
        ipv6_sysctls(&ns),
        "disable_ipv6=0\naccept_dad=0\ndad_transmits=0\nrouter_solicitations=0\naccept_ra=0\naddr_gen_mode=1"
    );
    let flags = tun_fd_flags(bridge.child().id());
    assert_eq!(flags & 0o4000, 0o4000, "O_NONBLOCK in {flags:o}");
    assert_eq!(flags & 0o2000000, 0o2000000, "O_CLOEXEC in {flags:o}");
}

#[test]
#[ignore = "needs root"]
fn no_ipv6_switches_it_off_and_the_mtu_is_set() {
    let (ns, _dir, _bridge) = root_bridge("devoff", &["--no-ipv6", "--mtu", "1400"]);
    let link = ip(&ns, &["link", "show", "tun0"]);
    assert_has(&link, ",UP,LOWER_UP>");
    assert_has(&link, " mtu 1400 ");
    let addr = ip(&ns, &["addr", "show", "dev", "tun0"]);
    assert_has(&addr, "inet 192.0.2.1/24 scope global tun0");
    assert!(!addr.contains("inet6"), "{addr}");
    assert!(ipv6_sysctls(&ns).starts_with("disable_ipv6=1\n"));
}

/// `tunbridge serve` with `args` run in `ns` (or, without one, in this process's own
/// namespace), waited for; its exit status and stderr.
fn serve_once(
    ns: Option<&Netns>,
    dir: &TempDir,
    args: &[&str],
) -> (std::process::ExitStatus, String) {
    let fifos = [
        "--cmd-fifo",
        &dir.join("cmd").display().to_string(),
        "--resp-fifo",
        &dir.join("resp").display().to_string(),
    ]
    .map(String::from);
    let mut argv: Vec<String> = Vec::new();
    if let Some(ns) = ns {
        argv.extend(["ip", "netns", "exec", &ns.name].map(String::from));
    }
    argv.extend([BIN.to_string(), "serve".into()]);
    argv.extend(fifos);
    argv.extend(args.iter().map(|s| s.to_string()));
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tunbridge");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    // A bridge that started is stopped once it says so; one refused has exited by then.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        if dir.join("resp").exists() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            )
            .unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    (status, reader.join().unwrap())
}

#[test]
#[ignore = "needs root"]
fn without_netns_the_machines_own_namespace_is_refused() {
    let (_ns, dir) = root_netns("hostns");
    // The name is too long for the kernel, so that even a bridge that failed to refuse
    // could make no device in this machine's namespace: the refusal must come first.
    let (status, stderr) = serve_once(None, &dir, &["--tun", "tbt-hostns-too-long", "--no-ipv6"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "refusing to make tbt-hostns-too-long in this machine's own network namespace"
        ),
        "{stderr}"
    );
    assert!(
        !dir.join("cmd").exists() && !dir.join("resp").exists(),
        "no FIFOs made"
    );
}

#[test]
#[ignore = "needs root"]
fn without_netns_a_namespace_entered_beforehand_is_served() {
    let (ns, dir) = root_netns("nsexec");
    let (status, stderr) = serve_once(Some(&ns), &dir, &[]);
    assert!(stderr.contains("bridge ready"), "{stderr}");
    assert!(status.success(), "stopped by SIGTERM, cleanly: {stderr}");
}

#[test]
#[ignore = "needs root"]
fn an_address_already_in_the_namespace_is_refused_by_name() {
    let (ns, dir) = root_netns("inuse");
    ip(
        &ns,
        &[
            "link", "add", "tbveth0", "type", "veth", "peer", "name", "tbveth1",
        ],
    );
    ip(&ns, &["addr", "add", "192.0.2.5/24", "dev", "tbveth0"]);
    let (status, stderr) = serve_once(None, &dir, &["--netns", &ns.name]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_has(
        &stderr,
        "192.0.2.1/24 overlaps 192.0.2.5/24 on tbveth0 in this network namespace",
    );
    assert!(!ns.has_link("tun0"), "no device made");
    // Other addresses are served beside it.
    let (status, stderr) = serve_once(
        None,
        &dir,
        &[
            "--netns",
            &ns.name,
            "--address",
            "198.51.100.1/24",
            "--peer",
            "198.51.100.2",
        ],
    );
    assert!(
        status.success() && stderr.contains("bridge ready"),
        "{stderr}"
    );
}
