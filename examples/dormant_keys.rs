//! A dormant-key report: keys nobody used for 90 days, across all owners, a page at a
//! time, as an operator would run it before asking owners to revoke them.
//!
//! Run with `cargo run --example dormant_keys`.

use chrono::TimeDelta;
use keymint::{
    IssueRequest, KeyFormat, Keyring, ManualClock, MemoryStore, PageRequest, VerifyContext,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A manual clock stands in for three months passing.
    let clock = ManualClock::default();
    let keyring = Keyring::builder(KeyFormat::new("sk_live")?, MemoryStore::new())
        .clock(clock.clone())
        .build()?;
    let ctx = VerifyContext::new();

    let deploy = keyring
        .issue(IssueRequest::new("acct_42", "CI deploy"))
        .await?;
    keyring
        .issue(IssueRequest::new("acct_42", "laptop test"))
        .await?;
    keyring
        .issue(IssueRequest::new("acct_7", "old integration"))
        .await?;
    keyring.verify(deploy.key.expose_secret(), &ctx).await?;

    clock.advance(TimeDelta::days(60));
    keyring.verify(deploy.key.expose_secret(), &ctx).await?; // still in use
    keyring.flush_last_used().await?; // last-used times are written in batches
    clock.advance(TimeDelta::days(40));

    println!("keys unused for 90 days:");
    let mut page = PageRequest::new(100);
    loop {
        let report = keyring
            .dormant_keys(TimeDelta::days(90), None, &page)
            .await?;
        for key in &report.items {
            let last = key
                .last_used_at
                .map_or_else(|| "never".to_owned(), |at| at.date_naive().to_string());
            println!(
                "  {}  {:<8} {:<16} issued {}  last used {last}",
                key.hint,
                key.owner,
                key.attributes.name,
                key.created_at.date_naive()
            );
        }
        match report.next_after {
            Some(after) => page = PageRequest::new(100).after(after),
            None => break,
        }
    }
    Ok(())
}
