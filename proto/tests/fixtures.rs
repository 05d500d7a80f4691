#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every fixture in docs/fixtures/ parses into its proto type and serialises
//! back to the same JSON.

use custody_proto::{
    error::ErrorBody,
    fixtures,
    jobs::{
        Job, JobKind, JobResult, LogBatch, Outcome, PollResponse, ResultAck, ResultBatch,
        ResultBatchAck,
    },
    servers::{EnrollRequest, EnrollResponse, Heartbeat},
};

fn same<T: serde::de::DeserializeOwned + serde::Serialize>(name: &str) {
    let (a, b) = fixtures::round_trip::<T>(name).unwrap();
    assert_eq!(a, b, "{name} does not round-trip");
}

#[test]
fn every_job_type_has_a_job_and_a_result_fixture_that_round_trip() {
    let jobs = fixtures::list("jobs").unwrap();
    let results = fixtures::list("results").unwrap();
    for kind in JobKind::ALL {
        let j = format!("jobs/{}.json", kind.as_str());
        assert!(jobs.contains(&j), "missing {j}");
        same::<Job>(&j);
        let job: Job = fixtures::load(&j).unwrap();
        assert_eq!(job.payload.kind(), kind);
        assert_eq!(job.protocol, custody_proto::PROTOCOL_VERSION);

        let r = format!("results/{}.json", kind.as_str());
        assert!(results.contains(&r), "missing {r}");
        same::<JobResult>(&r);
        let res: JobResult = fixtures::load(&r).unwrap();
        assert_eq!(res.idempotency_key, job.idempotency_key);
        match res.outcome {
            Outcome::Succeeded { output } => assert_eq!(output.kind(), kind),
            Outcome::Failed { .. } => panic!("{r} should succeed"),
        }
    }
    same::<JobResult>("results/failed.json");
}

#[test]
fn agent_messages_round_trip() {
    same::<EnrollRequest>("agent/enroll_request.json");
    same::<EnrollResponse>("agent/enroll_response.json");
    same::<Heartbeat>("agent/heartbeat.json");
    same::<PollResponse>("agent/poll_response.json");
    same::<PollResponse>("agent/poll_response_empty.json");
    same::<ResultAck>("agent/result_ack.json");
    same::<ResultAck>("agent/result_ack_duplicate.json");
    same::<LogBatch>("agent/log_batch.json");
    same::<ResultBatch>("agent/result_batch.json");
    same::<ResultBatchAck>("agent/result_batch_ack.json");
    same::<ErrorBody>("error_unsupported_protocol.json");
    same::<ErrorBody>("error_not_enough_key_managers.json");
}

#[test]
fn unknown_fields_and_job_types_are_refused() {
    let mut v = fixtures::load_value("jobs/rewrap_release_key.json").unwrap();
    v["payload"]["type"] = "exfiltrate_master_key".into();
    assert!(serde_json::from_value::<Job>(v).is_err());
    let mut v = fixtures::load_value("results/rewrap_release_key.json").unwrap();
    v["outcome"]["output"]["plaintext_key"] = "00".into();
    assert!(serde_json::from_value::<JobResult>(v).is_err());
}

#[test]
fn unknown_error_codes_parse_as_unknown() {
    let b: ErrorBody =
        serde_json::from_str(r#"{"error":{"code":"brand_new","message":"m"}}"#).unwrap();
    assert_eq!(b.error.code, custody_proto::ErrorCode::Unknown);
}
