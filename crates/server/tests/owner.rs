//! `--run-as-owner` with real processes: a server and a client started as
//! root write their files as the user who owns their folders, as they do
//! under Docker for the host user (see `node::owner`).
//!
//! Needs root; elsewhere the test says so and passes.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::Path,
    time::Duration,
};

use testkit::{run, Node, TempDir};

/// `nobody` on Debian; any uid but 0 would do.
const OWNER: u32 = 65534;

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

fn folder_owned_by(root: &Path, name: &str, uid: u32) -> String {
    let dir = root.join(name);
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).unwrap();
    dir.display().to_string()
}

#[test]
fn started_as_root_the_nodes_write_as_the_owner_of_their_folder() {
    if !is_root() {
        eprintln!("SKIPPED: --run-as-owner switches users only when started as root");
        return;
    }
    let root = TempDir::new().unwrap();
    // The owner must be able to reach its folder.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server_dir = folder_owned_by(root.path(), "server", OWNER);
    let client_dir = folder_owned_by(root.path(), "client", OWNER);
    let server = Node::spawn(
        "server",
        &[
            "--listen",
            "127.0.0.1:0",
            "--dir",
            &server_dir,
            "--run-as-owner",
        ],
    );
    let log = format!("{client_dir}/respuestas.txt");
    let addr = server.addr_string();
    let args = [
        "--connect",
        &addr,
        "--log",
        &log,
        "--count",
        "5",
        "--run-as-owner",
    ];
    let client = run("client", &args, Duration::from_secs(120));
    assert!(client.status.success(), "{}", client.stderr);
    for file in [format!("{server_dir}/log.txt"), log] {
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (OWNER, OWNER), "{file}");
    }
    assert!(
        server
            .stderr()
            .contains("running as the owner of the folder"),
        "{}",
        server.stderr()
    );

    // A folder that belongs to root keeps the node root, and it says how to
    // own the files.
    let root_dir = folder_owned_by(root.path(), "root-owned", 0);
    let server = Node::spawn(
        "server",
        &[
            "--listen",
            "127.0.0.1:0",
            "--dir",
            &root_dir,
            "--run-as-owner",
        ],
    );
    assert!(
        server.stderr().contains("create the host folder yourself"),
        "{}",
        server.stderr()
    );
}
