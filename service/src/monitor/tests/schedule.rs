//! One schedule for every watch: watches with the same interval fall due together
//! whenever they started, and watches asking for the same thing share one reading
//! of their process.

use std::collections::BTreeMap;
use std::time::Instant;

use super::*;

fn register(watches: &mut BTreeMap<u64, Registration>, id: u64, interval: Duration) {
    let (tx, _rx) = mpsc::channel(1);
    watches.insert(
        id,
        Registration {
            watch: Watch {
                interval,
                ..Watch::default()
            },
            tx,
            stats: Arc::default(),
            next_due: None,
        },
    );
}

fn due_ids(plan: &Plan) -> Vec<u64> {
    plan.due.iter().map(|(id, ..)| *id).collect()
}

#[test]
fn watches_started_apart_fall_due_together() {
    let epoch = Instant::now();
    let s = |secs: f64| epoch + Duration::from_secs_f64(secs);
    let i = Duration::from_secs(15);
    let mut watches = BTreeMap::new();
    register(&mut watches, 0, i);
    let (plan, _) = plan_due(&mut watches, epoch, s(1.2));
    assert_eq!(plan.new.len(), 1);
    register(&mut watches, 1, i);
    plan_due(&mut watches, epoch, s(5.7));
    // Both on the schedule's first moment at least half an interval away.
    assert_eq!(watches[&0].next_due, Some(s(15.0)));
    assert_eq!(watches[&1].next_due, Some(s(15.0)));
    // One started late in the interval waits for the next moment.
    register(&mut watches, 2, i);
    plan_due(&mut watches, epoch, s(10.0));
    assert_eq!(watches[&2].next_due, Some(s(30.0)));
    // Another interval has its own schedule.
    register(&mut watches, 3, Duration::from_secs(10));
    plan_due(&mut watches, epoch, s(10.0));
    assert_eq!(watches[&3].next_due, Some(s(20.0)));

    let (plan, sleep) = plan_due(&mut watches, epoch, s(15.0));
    assert_eq!(due_ids(&plan), vec![0, 1], "one tick for both");
    assert_eq!(sleep, Some(s(20.0)));
    let (plan, _) = plan_due(&mut watches, epoch, s(30.001));
    assert_eq!(
        due_ids(&plan),
        vec![0, 1, 2, 3],
        "10 s and 15 s meet at 30 s"
    );
    // A slow tick: the next moment not yet past, not a burst of missed ones.
    let (plan, _) = plan_due(&mut watches, epoch, s(47.0));
    assert_eq!(due_ids(&plan), vec![0, 1, 2, 3]);
    assert_eq!(watches[&0].next_due, Some(s(60.0)));
    assert_eq!(watches[&3].next_due, Some(s(50.0)));
}

#[test]
fn watches_asking_for_the_same_thing_share_one_source() {
    let mut sampler = Sampler::new(Some(FakeGpus::new(1).boxed()));
    let w = Watch {
        pid: Some(std::process::id()),
        ..Watch::default()
    };
    sampler.add(1, &w);
    sampler.add(2, &w);
    let slower = Watch {
        interval: Duration::from_secs(30),
        ..w.clone()
    };
    sampler.add(3, &slower);
    assert_eq!(sampler.sources(), 2);
    let out = sampler.sample(&[1, 2]);
    assert_eq!(out.len(), 2);
    let (a, b) = (&out[0].1, &out[1].1);
    assert_eq!(keys(&a.metrics), keys(&b.metrics));
    assert!(a.get(names::PROC_RSS_MB).is_some(), "{a:?}");
    assert_eq!(a.get(names::PROC_RSS_MB), b.get(names::PROC_RSS_MB));
    assert_eq!(a.get("gpu.0.gpu"), Some(50.0));
    assert!(a.get(names::NETWORK_RECV).is_some());
    sampler.remove(1);
    assert_eq!(sampler.sources(), 2, "watch 2 still uses it");
    sampler.retain(|id| id != 2);
    assert_eq!(sampler.sources(), 1);
    sampler.remove(3);
    assert_eq!(sampler.sources(), 0);
}
