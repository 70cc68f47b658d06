//! Key format hot paths: generate, parse + checksum, rejections, and scanning.
//!
//! Targets on the reference machine (2 cores): parse + checksum of a valid key and every
//! rejection under 100 ns median, scanning at least 200 MiB/s of source-code-like text.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use keymint::{KeyFormat, Scanner, parse_key};

fn format() -> KeyFormat {
    KeyFormat::new("sk_live").expect("valid prefix")
}

/// A valid key with its last checksum character changed.
fn wrong_checksum(key: &str) -> String {
    let mut bad = key.to_owned();
    let last = if bad.ends_with('a') { "b" } else { "a" };
    bad.replace_range(bad.len() - 1.., last);
    bad
}

fn generate_and_parse(c: &mut Criterion) {
    let format = format();
    let generated = format.generate().expect("os randomness");
    let key = generated.expose_secret().to_owned();
    let bad = wrong_checksum(&key);
    let too_long = "a".repeat(64 * 1024);
    let mut bad_char = key.clone();
    bad_char.replace_range(12..13, "-");

    let mut group = c.benchmark_group("format");
    group.bench_function("generate", |b| b.iter(|| format.generate()));
    group.bench_function("parse_valid/KeyFormat::parse", |b| {
        b.iter(|| format.parse(black_box(&key)).is_ok())
    });
    group.bench_function("parse_valid/parse_key", |b| {
        b.iter(|| parse_key(black_box(&key)).is_ok())
    });
    group.bench_function("reject/wrong_checksum", |b| {
        b.iter(|| format.parse(black_box(&bad)).is_err())
    });
    group.bench_function("reject/too_long_64KiB", |b| {
        b.iter(|| format.parse(black_box(&too_long)).is_err())
    });
    group.bench_function("reject/bad_char", |b| {
        b.iter(|| format.parse(black_box(&bad_char)).is_err())
    });
    group.finish();
}

/// Deterministic xorshift, so every run scans the same text.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % n as u64).expect("below n")
    }
}

/// About 1 MiB of Rust, YAML and shell-like lines, dense with snake_case identifiers (each
/// `_` is a scanner candidate), with `keys` real keys spread through it.
fn source_like_text(keys: &[String]) -> String {
    const LINES: &[&str] = &[
        "    let user_name = request.headers().get(\"x_user_name\")?.to_str()?;\n",
        "    if retry_count > MAX_RETRY_COUNT { return Err(Error::too_many_retries()); }\n",
        "fn parse_config_file(path: &Path) -> Result<AppConfig, ConfigError> {\n",
        "database_url: postgres://app_user@db_host:5432/app_db\n",
        "export RUST_LOG=info,tower_http=debug,sqlx_core=warn\n",
        "// TODO(api_team): move the rate_limit_per_minute setting into the tenant_config table\n",
        "    #[serde(rename = \"created_at\", default = \"default_created_at\")]\n",
        "        self.pending_requests.retain(|_, req| req.deadline > now_utc);\n",
        "  - name: run_integration_tests\n    run: cargo test --all_features -- --test_threads=1\n",
        "    const DEFAULT_TIMEOUT_MS: u64 = 30_000; // 30 s, see ADR_0042\n",
        "SELECT key_id, owner_id, created_at FROM api_keys WHERE revoked_at IS NULL;\n",
        "\n",
    ];
    const TARGET: usize = 1 << 20;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut text = String::with_capacity(TARGET + 4096);
    let every = TARGET / (keys.len() + 1);
    let mut next_key = 0;
    while text.len() < TARGET {
        if next_key < keys.len() && text.len() >= every * (next_key + 1) {
            text.push_str(&format!("API_KEY = \"{}\"\n", keys[next_key]));
            next_key += 1;
        }
        text.push_str(LINES[rng.below(LINES.len())]);
    }
    text
}

fn scan(c: &mut Criterion) {
    let keys: Vec<String> = (0..8)
        .map(|_| format().generate().expect("os randomness"))
        .map(|k| k.expose_secret().to_owned())
        .collect();
    let text = source_like_text(&keys);
    let any_prefix = Scanner::new();
    let one_format = Scanner::for_formats([format()]);
    assert_eq!(any_prefix.scan(text.as_bytes()).count(), keys.len());
    assert_eq!(one_format.scan(text.as_bytes()).count(), keys.len());

    // The worst case for the scanner: every word is a well-formed key whose checksum is
    // wrong, so every candidate is checked all the way to the CRC.
    let near_miss = wrong_checksum(&keys[0]);
    let near_misses = format!("{near_miss} ").repeat((1 << 20) / (near_miss.len() + 1));
    assert_eq!(any_prefix.scan(near_misses.as_bytes()).count(), 0);

    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("any_prefix/1MiB_source", |b| {
        b.iter(|| any_prefix.scan(black_box(text.as_bytes())).count())
    });
    group.bench_function("for_formats/1MiB_source", |b| {
        b.iter(|| one_format.scan(black_box(text.as_bytes())).count())
    });
    group.throughput(Throughput::Bytes(near_misses.len() as u64));
    group.bench_function("any_prefix/1MiB_near_miss_keys", |b| {
        b.iter(|| any_prefix.scan(black_box(near_misses.as_bytes())).count())
    });
    group.finish();
}

criterion_group!(benches, generate_and_parse, scan);
criterion_main!(benches);
