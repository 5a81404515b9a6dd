//! Serves the deterministic test models (`wine` v1/v2, `echo`, `echo-raw`) over REST and gRPC
//! so black-box clients (tritonclient, MLServer's codecs, requests) can be pointed at a real
//! server without a Python runtime:
//!
//! `cargo run -p mlox-serving --example serve_fixture -- --http-port 8080 --grpc-port 8081`
//!
//! Port 0 picks a free port; the chosen addresses are printed to stderr. Stops on Ctrl-C or
//! SIGTERM.

#[path = "../tests/common/fixtures.rs"]
mod fixtures;

use mlox_serving::{Dataplane, ServeConfig, ServerInfo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

fn port(args: &[String], flag: &str) -> Result<u16, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(0),
        Some(i) => args
            .get(i + 1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("{flag} needs a port number")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let http = TcpListener::bind(("127.0.0.1", port(&args, "--http-port")?)).await?;
    let grpc = TcpListener::bind(("127.0.0.1", port(&args, "--grpc-port")?)).await?;
    eprintln!(
        "serve_fixture: http={} grpc={}",
        http.local_addr()?,
        grpc.local_addr()?
    );
    let dataplane = Dataplane::new(
        fixtures::repository(),
        ServerInfo {
            name: "mlox-fixture".into(),
            ..ServerInfo::default()
        },
    );
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        stop.cancel();
    });
    mlox_serving::serve(
        dataplane,
        http,
        Some(grpc),
        ServeConfig::default(),
        shutdown,
    )
    .await?;
    Ok(())
}
