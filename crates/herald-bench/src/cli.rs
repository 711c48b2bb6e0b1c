//! The command line: the target options (before the scenario) and one subcommand per scenario.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::fleet::RampLimits;
use crate::target::{self, AppCreds, Labels, Protocol, Target};
use crate::tls::TlsClient;

/// Load generator for herald and its peers. Prints one JSON line per measured step on stdout
/// and a readable line per step on stderr.
#[derive(Debug, Parser)]
#[command(name = "herald-bench", version)]
pub struct Cli {
    /// The server under test.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Give up the whole run after this many seconds.
    #[arg(long, default_value_t = 900)]
    pub deadline: u64,
    /// Keep the generator's thread polling its sockets instead of sleeping between reads.
    ///
    /// On loopback the server's write runs the receiver's TCP path and wakes the receiving
    /// thread; waking a sleeping thread on the other vCPU is an inter-processor interrupt that
    /// the server's core pays for on every write. A client on another machine costs the server
    /// nothing of the kind, so measured latency is closer to a real deployment with this on.
    /// The generator's CPU then always reads 100%.
    #[arg(long)]
    pub busy_poll: bool,
    /// What to measure.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Where the server is and how to talk to it.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Server address (127.0.0.0/8 only).
    #[arg(long, default_value = "127.0.0.1:6001")]
    pub server: SocketAddr,
    /// Protocol the clients speak.
    #[arg(long, value_enum, default_value_t = Protocol::Pusher)]
    pub protocol: Protocol,
    /// Pusher app id (HTTP API path).
    #[arg(long, default_value = "app-id")]
    pub app_id: String,
    /// Pusher app key.
    #[arg(long, default_value = "app-key")]
    pub key: String,
    /// Pusher app secret.
    #[arg(long, default_value = "bench-4c8e2a6f0b1d3957")]
    pub secret: String,
    /// WebSocket path [default: /app/{key}?protocol=7&… for Pusher, / for WAMP].
    #[arg(long)]
    pub ws_path: Option<String>,
    /// WAMP realm [default: the app id, which is herald's realm].
    #[arg(long)]
    pub realm: Option<String>,
    /// Channel (Pusher) or topic (WAMP) [default: bench / com.bench.topic].
    #[arg(long)]
    pub channel: Option<String>,
    /// Spread client sockets over 127.0.0.2 ..= 127.0.0.(1+N); 0 lets the kernel pick.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(0..=200))]
    pub sources: u8,
    /// Pid of the server (its process tree is measured: RSS, CPU).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Server label in the results.
    #[arg(long, default_value = "herald")]
    pub label: String,
    /// Server version in the results.
    #[arg(long)]
    pub server_version: Option<String>,
    /// Configuration worth stating next to the numbers.
    #[arg(long)]
    pub knobs: Option<String>,
    /// Most WebSocket handshakes in flight.
    #[arg(long, default_value_t = 200)]
    pub in_flight: usize,
    /// Most new connections per second while ramping (idle and fan-out scenarios).
    #[arg(long, default_value_t = 1000.0)]
    pub connect_rate: f64,
    /// Speak TLS: `wss://` for WebSocket connections, `https://` for the HTTP publisher. The
    /// results are marked so the comparison shows them as rows of their own ("herald (tls)").
    #[arg(long, requires = "tls_ca")]
    pub tls: bool,
    /// PEM file of the certificates to trust with --tls (the server's self-signed certificate
    /// or its CA); the server's certificate must name its IP address (subjectAltName).
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
}

impl TargetArgs {
    /// The target these options describe.
    ///
    /// # Errors
    /// The `--tls-ca` file cannot be used.
    pub fn target(&self) -> Result<Target, String> {
        let pusher = self.protocol == Protocol::Pusher;
        let tls = match (&self.tls_ca, self.tls) {
            (Some(ca), true) => Some(TlsClient::from_ca_file(ca)?),
            _ => None,
        };
        Ok(Target {
            server: self.server,
            protocol: self.protocol,
            app: AppCreds { id: self.app_id.clone(), key: self.key.clone(), secret: self.secret.clone() },
            ws_path: self
                .ws_path
                .clone()
                .unwrap_or_else(|| if pusher { target::pusher_path(&self.key) } else { "/".into() }),
            realm: self.realm.clone().unwrap_or_else(|| self.app_id.clone()),
            channel: self.channel.clone().unwrap_or_else(|| if pusher { "bench" } else { "com.bench.topic" }.into()),
            sources: target::loopback_sources(self.sources),
            server_pid: self.server_pid,
            tls,
            labels: Labels {
                server: self.label.clone(),
                version: self.server_version.clone(),
                knobs: self.knobs.clone(),
                tls: self.tls,
            },
        })
    }

    /// The ramp limits these options describe.
    pub fn ramp(&self) -> RampLimits {
        RampLimits { in_flight: self.in_flight, rate: Some(self.connect_rate) }
    }
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// RSS per idle subscribed connection at each point.
    Idle {
        /// Connection counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000,18000")]
        points: Vec<usize>,
        /// Seconds idle before reading RSS.
        #[arg(long, default_value_t = 10.0)]
        settle: f64,
    },
    /// Latency per delivery at stepped publish rates.
    Fanout {
        /// Subscribers.
        #[arg(long, default_value_t = 1000)]
        subs: usize,
        /// Publishes per second, comma-separated, one step each.
        #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
        rates: Vec<f64>,
        /// How each step runs.
        #[command(flatten)]
        step: StepArgs,
    },
    /// Highest deliveries/s delivered in full: steps at these deliveries/s targets.
    Max {
        /// Subscribers.
        #[arg(long, default_value_t = 1000)]
        subs: usize,
        /// Deliveries per second to try, comma-separated (publish rate = target ÷ subs).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "50000,100000,200000,400000,700000,1000000,1400000,2000000,2800000"
        )]
        targets: Vec<f64>,
        /// How each step runs.
        #[command(flatten)]
        step: StepArgs,
    },
    /// Connections per second with only the in-flight bound.
    Connect {
        /// Connections to open.
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
    },
    /// Signed HTTP publishes per second to a channel without subscribers.
    HttpPublish {
        /// Keep-alive connections.
        #[arg(long, default_value_t = 4)]
        conns: usize,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Payload bytes.
        #[arg(long, default_value_t = 100)]
        payload: usize,
    },
    /// Start-up time of a server command (`{port}` is replaced by the --server port).
    Startup {
        /// Starts to time.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// p99 of subscribers that read, without and then with subscribers on the same channel
    /// that never read; server RSS in both windows.
    SlowConsumer {
        /// Subscribers that read.
        #[arg(long, default_value_t = 200)]
        subs: usize,
        /// Subscribers added for the second window that never read.
        #[arg(long, default_value_t = 50)]
        stalled: usize,
        /// Publishes per second in both windows.
        #[arg(long, default_value_t = 50.0)]
        rate: f64,
        /// How each window runs (use a payload of several KB so the stalled outboxes fill).
        #[command(flatten)]
        step: StepArgs,
    },
    /// Holds many subscribers over many channels under a steady publish rate for a long time,
    /// sampling the server's RSS and descriptors and checking every delivery.
    Soak {
        /// Subscribers in total.
        #[arg(long, default_value_t = 10_000)]
        conns: usize,
        /// Channels the subscribers are spread over (publishes go round-robin over them).
        #[arg(long, default_value_t = 100)]
        channels: usize,
        /// Publishes per second through the HTTP API, all channels together.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        /// Minutes to publish.
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
        /// Seconds between samples.
        #[arg(long, default_value_t = 60.0)]
        sample: f64,
        /// Payload bytes per event.
        #[arg(long, default_value_t = 100)]
        payload: usize,
        /// Keep-alive HTTP publishing connections.
        #[arg(long, default_value_t = 4)]
        publishers: usize,
        /// Longest wait at a sample for deliveries to catch up, s.
        #[arg(long, default_value_t = 10.0)]
        drain: f64,
    },
    /// Cross-node latency through Redis: subscribers on `--server` (node B), HTTP publishes on
    /// `--publish-to` (node A), latency per delivery as in `fanout`.
    CrossNode {
        /// Node A, where the publishes go (127.0.0.0/8; same app credentials as node B).
        #[arg(long)]
        publish_to: SocketAddr,
        /// Subscribers on node B.
        #[arg(long, default_value_t = 1000)]
        subs: usize,
        /// Publishes per second, comma-separated, one step each.
        #[arg(long, value_delimiter = ',', default_value = "10")]
        rates: Vec<f64>,
        /// How each step runs.
        #[command(flatten)]
        step: StepArgs,
    },
    /// Presence churn: each client joins `presence-{channel}` as its own user, waits for the
    /// acknowledgement and leaves, again and again; joins per second and join latency. Clients
    /// are spread round-robin over `--server` and the `--also` nodes (a cluster).
    PresenceChurn {
        /// Clients (distinct users: keep it within the app's presence member limit).
        #[arg(long, default_value_t = 50)]
        conns: usize,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Other nodes of the same cluster (127.0.0.0/8), comma-separated.
        #[arg(long, value_delimiter = ',')]
        also: Vec<SocketAddr>,
    },
    /// The kernel's floor: a plain loop on its own thread (pinned to `--writer-cpu`) writes one
    /// frame to each of `--conns` loopback sockets per round; the generator reads them as it
    /// reads a server's subscribers. No server is involved (`--server` is not used).
    WriteFloor {
        /// Receiving sockets.
        #[arg(long, default_value_t = 1000)]
        conns: usize,
        /// Rounds per second, comma-separated, one step each.
        #[arg(long, value_delimiter = ',', default_value = "10")]
        rates: Vec<f64>,
        /// Bytes per frame (herald's Pusher frame for a 100-byte payload is about 160).
        #[arg(long, default_value_t = 160)]
        frame: usize,
        /// CPU the writing thread pins itself to (the server's CPU in a comparison).
        #[arg(long, default_value_t = 0)]
        writer_cpu: usize,
        /// Warm-up seconds per step.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Measured seconds per step.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
    },
    /// Runs the minimal fan-out-only Pusher server (a floor for comparisons) until the deadline.
    ReferenceServer {
        /// Port on 127.0.0.1 (0 picks one; the listening line on stdout gives it).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Renders the side-by-side Markdown tables from JSON-lines files.
    Compare {
        /// Files written by earlier runs (stdout of the scenarios).
        files: Vec<PathBuf>,
    },
}

/// The shape of each fan-out step.
#[derive(Debug, Args)]
pub struct StepArgs {
    /// Payload bytes per event.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Warm-up seconds per step.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Measured seconds per step.
    #[arg(long, default_value_t = 20.0)]
    pub duration: f64,
    /// Publishing connections (HTTP) or sessions (WAMP).
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Stop after a step whose p99 exceeds this many ms.
    #[arg(long, default_value_t = 1000.0)]
    pub stop_p99_ms: f64,
    /// Stop after a step that delivered less than this share of its publishes.
    #[arg(long, default_value_t = 0.999)]
    pub stop_ratio: f64,
    /// Longest wait for a step's last deliveries, s.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
}
