//! What every HTTP request `pismo` makes has in common (`pismo data fetch`, the MLflow export):
//! HTTPS through rustls with the system's certificate store (so a company or sandbox CA that
//! curl trusts is trusted too), `HTTP(S)_PROXY`/`NO_PROXY` from the environment, pismo's user
//! agent, error statuses returned as answers for the caller to read, and timeouts.

use std::time::Duration;

use ureq::config::ConfigBuilder;
use ureq::tls::{RootCerts, TlsConfig};
use ureq::typestate::AgentScope;
use ureq::Agent;

/// An agent's settings: a host that cannot be resolved or reached fails within `connect`,
/// and one that stops answering (or reading what is sent) for `answer` breaks. The caller may
/// add its own before `.build().new_agent()`.
pub fn agent_config(connect: Duration, answer: Duration) -> ConfigBuilder<AgentScope> {
    Agent::config_builder()
        .timeout_resolve(Some(connect))
        .timeout_connect(Some(connect))
        .timeout_recv_response(Some(answer))
        .timeout_per_read(Some(answer))
        .timeout_send_body(Some(answer))
        .http_status_as_error(false)
        .user_agent(concat!("pismo/", env!("CARGO_PKG_VERSION")))
        .tls_config(
            TlsConfig::builder()
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        )
}
