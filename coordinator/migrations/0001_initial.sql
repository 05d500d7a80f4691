-- Custody coordinator schema. Portable SQL: TEXT, BIGINT, BOOLEAN only, no
-- engine-specific types, so a PostgreSQL backend can run the same files.
-- Times are Unix milliseconds (BIGINT).

CREATE TABLE account (
    id TEXT PRIMARY KEY,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    roles TEXT NOT NULL,              -- comma-separated: owner,deployer,approver
    email TEXT,
    created_at_ms BIGINT NOT NULL,
    removed_at_ms BIGINT
);

-- Bearer credentials of users and agents. Only the SHA-256 of the secret is kept.
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL,             -- first 12 characters, for lookup and rate limiting
    hash TEXT NOT NULL,               -- hex SHA-256 of the whole token
    user_id TEXT REFERENCES users(id),
    server_id TEXT,                   -- agent credential of this server
    label TEXT,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE INDEX tokens_prefix ON tokens(prefix);

CREATE TABLE groups_ (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups_(id),
    user_id TEXT NOT NULL REFERENCES users(id),
    PRIMARY KEY (group_id, user_id)
);

CREATE TABLE join_tokens (
    hash TEXT PRIMARY KEY,
    created_by TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT,
    server_id TEXT
);

CREATE TABLE servers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    oaep_hashes TEXT NOT NULL,        -- comma-separated, strongest first
    roles TEXT NOT NULL,              -- comma-separated: key_manager,target
    key_manager BOOLEAN NOT NULL,
    agent_version TEXT NOT NULL,
    enrolled_at_ms BIGINT NOT NULL,
    last_seen_at_ms BIGINT,
    removed_at_ms BIGINT
);

CREATE TABLE master_keys (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,              -- creating | active | lost | failed
    created_at_ms BIGINT NOT NULL,
    lost_at_ms BIGINT
);

-- wrap(P_i, MK) per key manager.
CREATE TABLE master_key_wraps (
    master_key_id TEXT NOT NULL REFERENCES master_keys(id),
    server_id TEXT NOT NULL REFERENCES servers(id),
    jwe TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (master_key_id, server_id)
);

CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    secure BOOLEAN NOT NULL,
    created_at_ms BIGINT NOT NULL
);

CREATE TABLE releases (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id),
    state TEXT NOT NULL,              -- created | uploaded | sealing | deployable | undeployable
    master_key_id TEXT NOT NULL,
    package_sha256 TEXT,
    package_size BIGINT,
    descriptor TEXT,                  -- signed descriptor JSON
    sealed_release_key TEXT,          -- seal(MK, RK)
    undeployable_reason TEXT,
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX releases_sha ON releases(package_sha256);

-- wrap(P_i, RK) per key manager.
CREATE TABLE release_key_wraps (
    release_id TEXT NOT NULL REFERENCES releases(id),
    server_id TEXT NOT NULL,
    jwe TEXT NOT NULL,
    PRIMARY KEY (release_id, server_id)
);

CREATE TABLE environments (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id),
    name TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (app_id, name)
);

CREATE TABLE environment_servers (
    environment_id TEXT NOT NULL REFERENCES environments(id),
    server_id TEXT NOT NULL REFERENCES servers(id),
    PRIMARY KEY (environment_id, server_id)
);

CREATE TABLE variables (
    id TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments(id),
    name TEXT NOT NULL,
    secret BOOLEAN NOT NULL,
    value TEXT,                       -- plain variables only
    sealed TEXT,                      -- seal(MK, value), secret variables only
    master_key_id TEXT,
    state TEXT NOT NULL,              -- plain | sealing | sealed | failed
    UNIQUE (environment_id, name)
);

-- wrap(P_i, value) per key manager, deleted once sealed.
CREATE TABLE variable_wraps (
    variable_id TEXT NOT NULL REFERENCES variables(id),
    server_id TEXT NOT NULL,
    jwe TEXT NOT NULL,
    PRIMARY KEY (variable_id, server_id)
);

CREATE TABLE deployments (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id),
    release_id TEXT NOT NULL REFERENCES releases(id),
    environment_id TEXT NOT NULL REFERENCES environments(id),
    state TEXT NOT NULL,
    reason TEXT,
    sealed_keylist TEXT,              -- seal(DK, keylist)
    sealed_deploy_key TEXT,           -- seal(MK, DK)
    created_by TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE deployment_targets (
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    server_id TEXT NOT NULL,
    state TEXT NOT NULL,              -- pending | wrapping | deploying | succeeded | failed
    wrapped_deploy_key TEXT,          -- wrap(P_t, DK)
    reason TEXT,
    PRIMARY KEY (deployment_id, server_id)
);

CREATE TABLE deployment_logs (
    deployment_id TEXT NOT NULL REFERENCES deployments(id),
    seq BIGINT NOT NULL,
    server_id TEXT NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,               -- JSON: the ids the payload is built from at hand-out
    subject TEXT NOT NULL,            -- the object it works on: master key, release, variable or deployment id
    state TEXT NOT NULL,              -- queued | leased | done | failed
    target_server TEXT,               -- deploy jobs: the only server that may run it
    assigned_server TEXT,
    tried TEXT NOT NULL,              -- comma-separated servers it was handed to
    attempts BIGINT NOT NULL,
    max_attempts BIGINT NOT NULL,
    lease_ms BIGINT NOT NULL,
    assigned_at_ms BIGINT,
    lease_expires_at_ms BIGINT,
    idempotency_key TEXT NOT NULL,
    error TEXT,
    created_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    done_by TEXT
);
CREATE INDEX jobs_assigned ON jobs(assigned_server, state);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_subject ON jobs(subject);

CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE audit_checkpoints (
    count BIGINT PRIMARY KEY,
    head_hash TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    signature TEXT NOT NULL
);
