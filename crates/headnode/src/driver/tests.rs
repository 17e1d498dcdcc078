//! The driver under Tokio's paused clock.

use journal::Durability;
use protocol::ErrorCode;

use super::{logs::tests::lines, *};

/// The driver under Tokio's paused clock: a datanode that registers and
/// then never answers misses the first heartbeat round (which its
/// registration starts) and is reported inactive; its message is parked
/// then and answered `ERR UNAVAILABLE` after the unavailable timeout: 12
/// virtual seconds, in no real time.
#[tokio::test(start_paused = true)]
async fn timeouts_follow_tokio_s_clock() {
    use protocol::{Frame, FrameCodec};
    use tokio_util::codec::Decoder;

    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| Journal::open(dir.path().join(name), Durability::Never).unwrap();
    let heartbeats = open("heartbeat.txt");
    let config = RouterConfig::default();
    let files = Files {
        registro: open("registro.txt"),
        heartbeats: heartbeats.clone(),
        ids: None,
    };
    let config = RouterConfig {
        heartbeat: crate::router::HeartbeatMode::Tcp,
        ..config
    };
    let handle = spawn(
        config.clone(),
        1,
        files,
        None,
        false,
        CancellationToken::new(),
    );
    let start = tokio::time::Instant::now();
    let (out, mut link_rx) = mpsc::unbounded_channel();
    let link = handle.new_link();
    handle.send(Event::Register {
        link,
        name: "dn1".into(),
        out,
        local: None,
        peer: SocketAddr::from(([127, 0, 0, 1], 1)),
    });
    let outcomes = handle.submit(handle.new_session(), vec!["hola".into()]);
    let (mut sent, mut codec) = (BytesMut::new(), FrameCodec::new(1024));
    let mut payloads = Vec::new();
    while payloads.len() < 2 {
        sent.extend_from_slice(&link_rx.recv().await.unwrap());
        while let Some(Frame::Data(payload)) = codec.decode(&mut sent).unwrap() {
            payloads.push(payload);
        }
    }
    assert_eq!(payloads, ["OK dn1", "STORE hola"]);

    let outcomes = outcomes.await.unwrap();
    let waited = start.elapsed();
    assert_eq!(
        outcomes[0].as_ref().unwrap_err().code,
        ErrorCode::Unavailable
    );
    let expected = config.heartbeat_timeout + config.unavailable_timeout;
    assert!(
        (expected..expected + Duration::from_millis(10)).contains(&waited),
        "{waited:?}"
    );
    let report = lines(&heartbeats);
    assert_eq!(report[0], "El dn1 se encuentra inactivo.", "{report:?}");
}
