//! End to end in Rust: enroll over HTTPS, then check in over mTLS; the host shows up.

use agent::proto::CHECKIN_PATH;
use app::api::dto::HostQuery;
use app::backend::db::now_unix;
use app::backend::hosts;

use crate::common::{identity, sample_checkin, TestServer};

#[tokio::test]
async fn enroll_then_checkin_with_reqwest_over_mtls() {
    let srv = TestServer::start().await;
    let token = srv.create_token().await;
    let (resp, key) = srv.enroll(&token).await;
    let cfg = crate::common::client_config(
        srv.roots(),
        Some(identity(&resp.cert_pem, &key)),
        &[&rustls::version::TLS13],
        true,
    );
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .resolve("localhost", srv.agent_addr)
        .build()
        .expect("client");
    let url = format!("https://localhost:{}{CHECKIN_PATH}", srv.agent_addr.port());
    for _ in 0..2 {
        let r = client.post(&url).json(&sample_checkin()).send().await.expect("check-in");
        assert_eq!(r.status(), 200);
    }
    let page = hosts::list(&srv.state.db, &app::backend::access::Scope::All, &HostQuery { page: 1, per_page: 50, ..Default::default() }, 300, now_unix())
        .await
        .expect("list");
    assert_eq!(page.total, 1);
    assert_eq!(page.items[0].hostname, "web01");
    srv.stop().await;
}

/// The real agent library: `pm-agent enroll` (CA pinned by fingerprint, fetched from
/// `/api/v1/ca.pem`), then one `pm-agent run --once` cycle over mTLS.
#[tokio::test]
async fn real_agent_enrolls_and_checks_in() {
    use agent::checkin::Agent;
    use agent::config::AgentConfig;
    use agent::enroll::{enroll, CaPin, EnrollOptions};
    use agent::state::StateDir;

    let srv = TestServer::start().await;
    let token = srv.create_token().await;
    let state_dir = srv.dir.path().join("agent-state");
    let opts = EnrollOptions {
        server: format!("https://localhost:{}", srv.web_addr.port()),
        token,
        ca: CaPin::Fingerprint(srv.state.ca.fingerprint()),
        state_dir: state_dir.clone(),
    };
    let enrolled = enroll(&opts).await.expect("agent enrolls");

    // The server advertises its configured agent_url; the test listener has a random port.
    let state = StateDir::new(&state_dir);
    let mut cfg = AgentConfig::load(&state.config_path()).expect("agent.toml");
    cfg.agent_url = format!("https://localhost:{}", srv.agent_addr.port());
    std::fs::write(state.config_path(), cfg.to_toml().expect("toml")).expect("write agent.toml");

    let agent = Agent::load(state).expect("agent loads");
    let report = agent.cycle().await.expect("check-in cycle");
    assert!(report.checkins >= 1);
    let detail = hosts::get(&srv.state.db, &app::backend::access::Scope::All, &enrolled.host_id, 300, now_unix()).await.expect("host");
    assert!(detail.summary.online);
    assert!(detail.summary.last_seen.is_some());
    assert!(!detail.summary.hostname.is_empty());
    srv.stop().await;
}
