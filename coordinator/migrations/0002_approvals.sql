-- Deployment approvals and notifications. Portable SQL like 0001.

-- An approver's Ed25519 public key (hex of the raw 32 bytes) and its key id
-- (base64url SHA-256), registered by an owner.
ALTER TABLE users ADD COLUMN approval_public_key TEXT;
ALTER TABLE users ADD COLUMN approval_key_id TEXT;

-- An environment's approval policy; no row: deployments start at once.
CREATE TABLE approval_policies (
    environment_id TEXT PRIMARY KEY REFERENCES environments(id),
    group_id TEXT NOT NULL REFERENCES groups_(id),
    quorum BIGINT NOT NULL,
    allow_self_approval BOOLEAN NOT NULL,
    window_seconds BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

-- The policy a deployment was created under (NULL group: none was needed)
-- and when it is canceled if not started.
ALTER TABLE deployments ADD COLUMN approval_group_id TEXT;
ALTER TABLE deployments ADD COLUMN approval_quorum BIGINT;
ALTER TABLE deployments ADD COLUMN allow_self_approval BOOLEAN;
ALTER TABLE deployments ADD COLUMN approval_window_seconds BIGINT;
ALTER TABLE deployments ADD COLUMN approval_deadline_ms BIGINT;
CREATE INDEX deployments_state ON deployments(state);

-- Every approval and decline, with the signed statement as received.
CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    decision TEXT NOT NULL,           -- approve | decline
    deploy BOOLEAN NOT NULL,          -- approve and deploy
    statement TEXT,                   -- signed statement, canonical JSON
    key_id TEXT,
    targets TEXT,                     -- comma-separated, as in the statement
    expires_at_ms BIGINT,
    message TEXT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX approvals_deployment ON approvals(deployment_id);

-- Webhooks of the account. The HMAC secret is not stored: it is derived
-- from STATE_DIR/webhook.key and the webhook id.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    description TEXT,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    removed_at_ms BIGINT
);

-- Notifications to send, written in the transaction of the state change
-- they announce and drained by a background task.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,            -- email | webhook
    recipient TEXT NOT NULL,          -- address | webhook id
    event TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    payload TEXT NOT NULL,            -- JSON: {to, subject, body} | the webhook body
    state TEXT NOT NULL,              -- pending | sent | failed
    attempts BIGINT NOT NULL,
    next_attempt_at_ms BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_at_ms BIGINT NOT NULL,
    sent_at_ms BIGINT
);
CREATE INDEX outbox_due ON outbox(channel, state, next_attempt_at_ms);
CREATE INDEX outbox_recipient ON outbox(recipient);
