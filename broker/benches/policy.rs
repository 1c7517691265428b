//! Policy decisions over 1,000 policies and 10,000 resources (`cargo bench -p leasehold-broker`).
//! `leasehold bench policy` reports the same decisions' p50/p99 latency.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use leasehold_broker::policy::{Action, Subject, synthetic};

fn decisions(c: &mut Criterion) {
    let estate = synthetic::estate(1000, 10_000);
    let own = Subject {
        principal: "service:prod:team-421",
        ..Subject::default()
    };
    c.bench_function("allow: own team's secret", |b| {
        b.iter(|| {
            estate.set.evaluate(
                black_box(&own),
                Action::SecretsRead,
                black_box("prod/team-421/secret-1421"),
            )
        })
    });
    c.bench_function("deny: explicit deny statement", |b| {
        b.iter(|| {
            estate.set.evaluate(
                black_box(&own),
                Action::SecretsRead,
                black_box("prod/team-421/frozen-4210"),
            )
        })
    });
    c.bench_function("deny: nothing matches", |b| {
        b.iter(|| {
            estate.set.evaluate(
                black_box(&own),
                Action::SecretsRead,
                black_box("prod/team-7/secret-7"),
            )
        })
    });
    let oncall = Subject {
        principal: "user:oncall-421",
        mfa: true,
        has_ticket: true,
        ..Subject::default()
    };
    c.bench_function("allow: through a group with conditions", |b| {
        b.iter(|| {
            estate.set.evaluate(
                black_box(&oncall),
                Action::SecretsRotate,
                black_box("prod/team-421/a/b"),
            )
        })
    });
}

criterion_group!(benches, decisions);
criterion_main!(benches);
