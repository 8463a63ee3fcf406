//! Leader election (src/daemon/lease.rs) against the Kubernetes API stand-in of
//! tests/support/kube.rs, which answers the Lease calls of kube-lease-manager as a real API server
//! does (field ownership and apply conflicts included). Leases of 2 s renewed every second keep
//! each test to seconds; every test is bounded in time, talks only to 127.0.0.1, and stops its
//! electors and the stand-in when it ends.

mod support;

use setpoint::cluster::lease::{Leadership, LeaseConfig, elect};
use std::time::{Duration, Instant, SystemTime};
use support::TempDir;
use support::kube::{Fault, KubeStandIn, World};
use tokio::sync::watch;

const TEST_LIMIT: Duration = Duration::from_secs(60);
const NS: &str = "demo";
const LEASE: &str = "setpoint";
const DURATION: Duration = Duration::from_secs(2);
const RENEW: Duration = Duration::from_secs(1);
/// How long 403s in a row are retried (two minutes in the daemon).
const GRACE: Duration = Duration::from_secs(2);

fn stand_in() -> KubeStandIn {
    KubeStandIn::start(World {
        token: Some("s3cr3t-token".into()),
        ..World::default()
    })
}

async fn client_from(kubeconfig: &std::path::Path) -> kube::Client {
    let file = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

async fn client(api: &KubeStandIn, dir: &TempDir) -> kube::Client {
    client_from(&api.kubeconfig(dir, NS)).await
}

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        name: LEASE.into(),
        namespace: NS.into(),
        identity: identity.into(),
        lease_duration: DURATION,
        renew_period: RENEW,
        forbidden_grace: GRACE,
    }
}

/// Waits until the flag is `want`; returns how long that took.
async fn until(flag: &mut watch::Receiver<bool>, want: bool, limit: Duration) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(limit, flag.wait_for(|v| *v == want))
        .await
        .unwrap_or_else(|_| panic!("the flag did not turn {want} within {limit:?}"))
        .unwrap();
    start.elapsed()
}

/// Samples both flags every 10 ms for `span`, and fails if both are ever true.
async fn sample(a: &Leadership, b: &Leadership, span: Duration) -> Vec<(bool, bool)> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < span {
        let s = (a.is_leader(), b.is_leader());
        assert!(!(s.0 && s.1), "two leaders at once");
        seen.push(s);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time_and_a_release_hands_over() {
    support::bounded(TEST_LIMIT, async {
        let api = stand_in();
        let dir = TempDir::new("lease");
        let c = client(&api, &dir).await;
        let (a, b) = tokio::join!(elect(c.clone(), config("a")), elect(c, config("b")));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(api.world().leases.len(), 1, "one Lease, created once");

        // Someone leads within a lease duration of the start.
        let start = Instant::now();
        while !a.is_leader() && !b.is_leader() {
            assert!(start.elapsed() < DURATION * 2, "nobody leads");
            assert!(!(a.is_leader() && b.is_leader()));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Then exactly that one, through two lease durations of renewals.
        let a_leads = a.is_leader();
        let seen = sample(&a, &b, DURATION * 2).await;
        assert!(
            seen.iter().all(|s| *s == (a_leads, !a_leads)),
            "the leader changed or stepped down: {seen:?}"
        );
        let (leader, follower, leader_id, follower_id) = if a_leads {
            (a, b, "a", "b")
        } else {
            (b, a, "b", "a")
        };
        assert_eq!(
            api.world().lease_holder(NS, LEASE).as_deref(),
            Some(leader_id)
        );

        // A release hands over within about one renew period (the follower reads the Lease
        // that often), never with two leaders.
        let mut flag = leader.subscribe();
        let released = Instant::now();
        let stepping_down = tokio::spawn(leader.release());
        until(&mut flag, false, RENEW).await;
        stepping_down.await.unwrap().expect("release");
        assert_eq!(api.world().lease_holder(NS, LEASE), None, "released");
        while !follower.is_leader() {
            assert!(
                released.elapsed() < RENEW + Duration::from_millis(1500),
                "no takeover after {:?}",
                released.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            api.world().lease_holder(NS, LEASE).as_deref(),
            Some(follower_id)
        );
        let lease = api.world().lease(NS, LEASE).unwrap().clone();
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 2);
        assert!(
            lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 2,
            "{lease}"
        );
        follower.release().await.expect("release");
        assert_eq!(api.world().lease_holder(NS, LEASE), None);

        // kube-lease-manager's calls: GET, POST, server-side apply and strategic merge patches
        // with one field manager per replica.
        let sent = api.requests();
        let mut kinds: Vec<(String, String)> = sent
            .iter()
            .filter(|r| r.uri.contains("/leases"))
            .map(|r| (r.method.clone(), r.content_type.clone().unwrap_or_default()))
            .collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds,
            [
                ("GET".to_string(), String::new()),
                (
                    "PATCH".to_string(),
                    "application/apply-patch+yaml".to_string()
                ),
                (
                    "PATCH".to_string(),
                    "application/strategic-merge-patch+json".to_string()
                ),
                ("POST".to_string(), "application/json".to_string()),
            ]
        );
        assert!(
            sent.iter()
                .any(|r| r.uri.contains("fieldManager=setpoint-lease-a"))
        );
        assert!(
            sent.iter()
                .any(|r| r.uri.contains("fieldManager=setpoint-lease-b"))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_within_about_a_lease_duration() {
    support::bounded(TEST_LIMIT, async {
        let api = stand_in();
        let dir = TempDir::new("lease");
        let kubeconfig = api.kubeconfig(&dir, NS);

        // Replica a runs on a runtime of its own, which is dropped to crash it: its election
        // task ends without a release.
        let (leading, is_leading) = tokio::sync::oneshot::channel();
        let (crash, crashed) = tokio::sync::oneshot::channel::<()>();
        let path = kubeconfig.clone();
        let replica_a = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let a = rt.block_on(async {
                let a = elect(client_from(&path).await, config("a")).await.unwrap();
                until(&mut a.subscribe(), true, DURATION * 2).await;
                leading.send(()).unwrap();
                let _ = crashed.await;
                a
            });
            drop(rt);
            drop(a);
        });
        is_leading.await.unwrap();

        let b = elect(client_from(&kubeconfig).await, config("b"))
            .await
            .unwrap();
        tokio::time::sleep(DURATION).await;
        assert!(!b.is_leader(), "a holds the Lease");
        crash.send(()).unwrap();
        tokio::task::spawn_blocking(move || replica_a.join().unwrap())
            .await
            .unwrap();
        let crashed_at = Instant::now();
        assert_eq!(api.world().lease_holder(NS, LEASE).as_deref(), Some("a"));

        // b waits for a's Lease to expire (at most one duration after a's last renewal), clears
        // it, waits 0.1-1 s against a collision, and takes it.
        let took = until(&mut b.subscribe(), true, DURATION * 3).await;
        assert!(
            took < DURATION + Duration::from_millis(1800),
            "b took over {took:?} after the crash"
        );
        assert_eq!(api.world().lease_holder(NS, LEASE).as_deref(), Some("b"));
        assert!(crashed_at.elapsed() >= took);
        b.release().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_taken_by_another_holder_is_seen_promptly() {
    support::bounded(TEST_LIMIT, async {
        let api = stand_in();
        let dir = TempDir::new("lease");
        let a = elect(client(&api, &dir).await, config("a")).await.unwrap();
        let mut flag = a.subscribe();
        until(&mut flag, true, DURATION * 2).await;

        assert!(api.world().take_lease(NS, LEASE, "intruder", 30));
        let seen = until(&mut flag, false, DURATION * 2).await;
        assert!(
            seen < RENEW + Duration::from_millis(800),
            "the loss was seen after {seen:?}"
        );
        // While the intruder renews its Lease, a stays a follower (kube-lease-manager renews
        // once more without looking at the holder, which shortens the intruder's Lease to a's
        // duration: a holder that renews does not mind), and a's release leaves the intruder's
        // Lease alone.
        let renewing = Instant::now();
        while renewing.elapsed() < DURATION * 2 {
            assert!(api.world().take_lease(NS, LEASE, "intruder", 2));
            assert!(!a.is_leader());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        a.release().await.unwrap();
        assert_eq!(
            api.world().lease_holder(NS, LEASE).as_deref(),
            Some("intruder")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_steps_down_before_the_lease_expires() {
    support::bounded(TEST_LIMIT, async {
        let api = stand_in();
        let dir = TempDir::new("lease");
        let a = elect(client(&api, &dir).await, config("a")).await.unwrap();
        let mut flag = a.subscribe();
        until(&mut flag, true, DURATION * 2).await;

        // Every renewal fails from now on; reads still work.
        api.world().faults.push_back(Fault {
            method: Some("PATCH".into()),
            path_contains: "/leases/setpoint".into(),
            status: Some(500),
            delay: Duration::ZERO,
            times: 1000,
        });
        until(&mut flag, false, DURATION * 2).await;
        let stepped_down = SystemTime::now();
        let lease = api.world().lease(NS, LEASE).unwrap().clone();
        let renewed = humantime::parse_rfc3339(lease["spec"]["renewTime"].as_str().unwrap())
            .expect("renewTime");
        let expiry = renewed + DURATION;
        assert!(
            stepped_down < expiry,
            "stepped down {:?} after the Lease expired",
            stepped_down.duration_since(expiry).unwrap_or_default()
        );
        assert_eq!(api.world().lease_holder(NS, LEASE).as_deref(), Some("a"));

        // Once renewals go through again, a leads again: nobody else took the Lease.
        api.world().faults.clear();
        until(&mut flag, true, DURATION * 3).await;
        a.release().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_lease_is_created_again() {
    support::bounded(TEST_LIMIT, async {
        let api = stand_in();
        let dir = TempDir::new("lease");
        let a = elect(client(&api, &dir).await, config("a")).await.unwrap();
        let mut flag = a.subscribe();
        until(&mut flag, true, DURATION * 2).await;
        let uid = api.world().lease(NS, LEASE).unwrap()["metadata"]["uid"].clone();

        // Creating it again fails twice first (retried after 0.4 s and 0.8 s), so that the
        // flag stays false long enough to be seen.
        api.world().faults.push_back(Fault {
            method: Some("POST".into()),
            path_contains: "/leases".into(),
            status: Some(500),
            delay: Duration::ZERO,
            times: 2,
        });
        assert!(api.world().delete_lease(NS, LEASE));
        until(&mut flag, false, DURATION * 2).await;
        until(&mut flag, true, DURATION * 3).await;
        assert!(api.world().faults.is_empty(), "both failures were met");
        let lease = api.world().lease(NS, LEASE).unwrap().clone();
        assert_ne!(lease["metadata"]["uid"], uid, "a new Lease");
        assert_eq!(lease["spec"]["holderIdentity"], "a");
        a.release().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_of_403_as_a_restarted_api_server_answers_does_not_end_the_election() {
    support::bounded(TEST_LIMIT, async {
        let api = stand_in();
        let dir = TempDir::new("lease");
        let c = client(&api, &dir).await;
        // At the start, and later while leading.
        api.world().forbidden_until = Some(std::time::Instant::now() + Duration::from_secs(1));
        let mut a = elect(c, config("a")).await.unwrap();
        let mut flag = a.subscribe();
        until(&mut flag, true, DURATION * 3).await;
        api.world().forbidden_until = Some(std::time::Instant::now() + Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(2)).await;
        until(&mut flag, true, DURATION * 3).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(100), a.failed())
                .await
                .is_err(),
            "the election ended"
        );
        a.release().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_lease_is_an_error_naming_the_verb_and_the_resource() {
    support::bounded(TEST_LIMIT, async {
        let api = stand_in();
        let dir = TempDir::new("lease");
        let c = client(&api, &dir).await;
        let forbid = |method: &str, times: u32| Fault {
            method: Some(method.into()),
            path_contains: "/leases".into(),
            status: Some(403),
            delay: Duration::ZERO,
            times,
        };

        // At the start, for the whole grace: the election does not begin.
        api.world().faults.push_back(forbid("GET", 1000));
        let started = Instant::now();
        let e = elect(c.clone(), config("a")).await.unwrap_err();
        assert!(started.elapsed() >= GRACE, "{:?}", started.elapsed());
        api.world().faults.clear();
        let text = e.to_string();
        assert_eq!(e.code(), Some(403));
        assert!(text.ends_with("(forbidden for 2s in a row)"), "{text}");
        assert!(
            text.starts_with(
                "Lease demo/setpoint: reading or creating it (get, create): HTTP 403 Forbidden: "
            ),
            "{text}"
        );
        assert!(
            text.contains("cannot get resource \"leases\" in API group \"coordination.k8s.io\""),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"), "{text}");

        // Later, while leading: the election ends, the flag first.
        let mut a = elect(c, config("a")).await.unwrap();
        let mut flag = a.subscribe();
        until(&mut flag, true, DURATION * 2).await;
        api.world().faults.push_back(forbid("PATCH", 1000));
        let e = tokio::time::timeout(GRACE + DURATION * 2, a.failed())
            .await
            .expect("the election ends");
        assert!(!*flag.borrow());
        let text = e.to_string();
        assert!(
            text.contains("cannot patch resource \"leases\" in API group \"coordination.k8s.io\""),
            "{text}"
        );
        assert!(
            text.contains("needs get, create and patch on leases"),
            "{text}"
        );
        assert_eq!(a.failed().await, e, "the same error again");
        assert_eq!(a.release().await, Err(e));
    })
    .await;
}
