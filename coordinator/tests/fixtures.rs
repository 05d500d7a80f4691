#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! docs/fixtures against the coordinator's own checks: every JWE in a job or
//! result fixture has a Custody protected header, every key's fingerprint is
//! its RFC 7638 thumbprint, the deploy job's descriptor parses, and every
//! fixture round-trips through the proto types the server uses.

use custody_coordinator::{envelopes, keys};
use custody_proto::fixtures;
use custody_proto::jobs::{Job, JobPayload, JobResult};

fn jwes(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) if s.matches('.').count() == 4 && s.starts_with("eyJ") => {
            out.push(s.clone())
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| jwes(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| jwes(x, out)),
        _ => {}
    }
}

#[test]
fn fixture_envelopes_keys_and_descriptor_are_real_formats() {
    let mut names = fixtures::list("jobs").unwrap();
    names.extend(fixtures::list("results").unwrap());
    let mut count = 0;
    for name in &names {
        let v = fixtures::load_value(name).unwrap();
        let mut found = vec![];
        jwes(&v, &mut found);
        for j in found {
            custody_envelope::jwe::peek(&j).unwrap_or_else(|e| panic!("{name}: {e}"));
            count += 1;
        }
        if name.starts_with("jobs/") {
            let (a, b) = fixtures::round_trip::<Job>(name).unwrap();
            assert_eq!(a, b);
            let job: Job = fixtures::load(name).unwrap();
            let keys: Vec<_> = match &job.payload {
                JobPayload::CreateMasterKey { key_managers, .. } => key_managers.clone(),
                JobPayload::ShareMasterKey { newcomer, .. } => vec![newcomer.clone()],
                JobPayload::WrapDeployKey { target, .. } => vec![target.clone()],
                JobPayload::Deploy {
                    descriptor,
                    artifact,
                    ..
                } => {
                    let d = envelopes::descriptor(descriptor).unwrap();
                    assert_eq!(d.package_sha256, artifact.sha256);
                    vec![]
                }
                _ => vec![],
            };
            for k in keys {
                assert_eq!(
                    keys::fingerprint_of_pem(&k.public_key_pem).unwrap(),
                    k.fingerprint,
                    "{name}"
                );
            }
        } else {
            let (a, b) = fixtures::round_trip::<JobResult>(name).unwrap();
            assert_eq!(a, b);
        }
    }
    assert!(count >= 20, "only {count} JWEs checked");
}
