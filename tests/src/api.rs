//! The owner's calls a scenario makes, through `custody-client` against
//! the real coordinator (the CLI is driven separately, see [`crate::cli`]).

use custody_envelope::jwe::{Binding, Purpose};
use custody_proto::apps::{App, Deployment, DeploymentLogLine, Environment, WrappedKey};
use custody_proto::servers::{JoinToken, KeyManagerKey, MasterKeyStatus, Server};
use serde_json::{Value, json};

use crate::coordinator::Coordinator;
use crate::error::{E2eError, Result, api};
use crate::release::wrap_to;
use crate::wait::eventually;

impl Coordinator {
    /// A one-time join token.
    pub async fn join_token(&self) -> Result<String> {
        let jt: JoinToken = self
            .owner
            .post("/v1/servers/join-tokens", &json!({}))
            .await
            .map_err(api("create a join token"))?;
        Ok(jt.token)
    }

    /// One server.
    pub async fn server(&self, id: &str) -> Result<Server> {
        self.owner
            .get(&format!("/v1/servers/{id}"))
            .await
            .map_err(api(format!("GET server {id}")))
    }

    /// Makes an enrolled agent a key manager.
    pub async fn enable_key_manager(&self, id: &str) -> Result<Server> {
        self.owner
            .put(
                &format!("/v1/servers/{id}/key-manager"),
                &json!({"enabled": true}),
            )
            .await
            .map_err(api(format!("enable key manager {id}")))
    }

    /// Removes a server (the owner's decision; its master-key wrap goes).
    pub async fn remove_server(&self, id: &str) -> Result<()> {
        self.owner
            .delete(&format!("/v1/servers/{id}"))
            .await
            .map_err(api(format!("remove server {id}")))
    }

    /// The master key's status.
    pub async fn master_key(&self) -> Result<MasterKeyStatus> {
        self.owner
            .get("/v1/master-key")
            .await
            .map_err(api("GET /v1/master-key"))
    }

    /// Waits until the active master key is held by every one of `servers`.
    pub async fn wait_holders(&self, servers: &[&str]) -> Result<MasterKeyStatus> {
        eventually(
            60,
            "the master key to be held by the key managers",
            || async {
                let mk = self.master_key().await?;
                Ok((mk.state == "active"
                    && servers.iter().all(|s| mk.holders.iter().any(|h| h == s)))
                .then_some(mk))
            },
        )
        .await
    }

    /// `/v1/jobs` (newest 500, no payloads).
    pub async fn jobs(&self) -> Result<Vec<Value>> {
        self.owner
            .get("/v1/jobs")
            .await
            .map_err(api("GET /v1/jobs"))
    }

    /// The jobs working on `subject` (a deployment, release … id).
    pub async fn jobs_of(&self, subject: &str) -> Result<Vec<Value>> {
        Ok(self
            .jobs()
            .await?
            .into_iter()
            .filter(|j| j["subject"] == subject)
            .collect())
    }

    /// Creates an app (`secure` needs two live key managers).
    pub async fn create_app(&self, name: &str, secure: bool) -> Result<App> {
        self.owner
            .post("/v1/apps", &json!({"name": name, "secure": secure}))
            .await
            .map_err(api(format!("create app {name}")))
    }

    /// Creates environment `env` of `app` with `targets` (server ids).
    pub async fn environment(&self, app: &str, env: &str, targets: &[&str]) -> Result<()> {
        let _: Environment = self
            .owner
            .post(
                &format!("/v1/apps/{app}/environments"),
                &json!({"name": env}),
            )
            .await
            .map_err(api(format!("create environment {env}")))?;
        for t in targets {
            let _: Environment = self
                .owner
                .post(
                    &format!("/v1/apps/{app}/environments/{env}/servers"),
                    &json!({"server": t}),
                )
                .await
                .map_err(api(format!("add server {t} to {env}")))?;
        }
        Ok(())
    }

    /// Sets a plain variable.
    pub async fn set_plain(&self, app: &str, env: &str, name: &str, value: &str) -> Result<()> {
        let _: Environment = self
            .owner
            .put(
                &format!("/v1/apps/{app}/environments/{env}/variables/{name}"),
                &json!({"value": value}),
            )
            .await
            .map_err(api(format!("set variable {name}")))?;
        Ok(())
    }

    /// Sets a secret variable the way `custody env set-var --secret` does:
    /// wrapped to every key manager in `holders`; waits until it is sealed.
    pub async fn set_secret(
        &self,
        holders: &[KeyManagerKey],
        app: &str,
        env: &str,
        name: &str,
        value: &str,
    ) -> Result<()> {
        let binding = Binding {
            purpose: Purpose::SecretVar,
            account: self.account.clone(),
            app: Some(app.to_owned()),
            release: None,
            deployment: None,
            name: Some(name.to_owned()),
            environment: Some(env.to_owned()),
        };
        let wrapped = holders
            .iter()
            .map(|k| {
                Ok(WrappedKey {
                    server_id: k.server_id.clone(),
                    jwe: wrap_to(k, &binding, value.as_bytes())?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let _: Environment = self
            .owner
            .put(
                &format!("/v1/apps/{app}/environments/{env}/variables/{name}"),
                &json!({"wrapped": wrapped}),
            )
            .await
            .map_err(api(format!("set secret variable {name}")))?;
        eventually(60, "the secret variable to be sealed", || async {
            let e: Environment = self
                .owner
                .get(&format!("/v1/apps/{app}/environments/{env}"))
                .await
                .map_err(api("GET environment"))?;
            let v = e
                .variables
                .iter()
                .find(|v| v.name == name)
                .ok_or_else(|| E2eError::Setup(format!("variable {name} vanished")))?;
            match v.state.as_deref() {
                Some("failed") => Err(E2eError::Setup(format!("sealing {name} failed"))),
                Some("sealed") => Ok(Some(())),
                _ => Ok(None),
            }
        })
        .await
    }

    /// Creates a deployment (`POST /v1/deployments`); the API's refusal is
    /// returned as the client error, for tests that expect one.
    pub async fn try_deploy(
        &self,
        app: &str,
        release: &str,
        env: &str,
    ) -> std::result::Result<Deployment, custody_client::ClientError> {
        self.owner
            .post(
                "/v1/deployments",
                &json!({"app": app, "release": release, "environment": env}),
            )
            .await
    }

    /// Creates a deployment.
    pub async fn deploy(&self, app: &str, release: &str, env: &str) -> Result<Deployment> {
        self.try_deploy(app, release, env)
            .await
            .map_err(api(format!("deploy {release} to {env}")))
    }

    /// One deployment.
    pub async fn deployment(&self, id: &str) -> Result<Deployment> {
        self.owner
            .get(&format!("/v1/deployments/{id}"))
            .await
            .map_err(api(format!("GET deployment {id}")))
    }

    /// Waits until the deployment is in a terminal state.
    pub async fn finished(&self, id: &str) -> Result<Deployment> {
        eventually(120, &format!("deployment {id} to finish"), || async {
            let d = self.deployment(id).await?;
            Ok(d.state.is_terminal().then_some(d))
        })
        .await
    }

    /// The deployment's log.
    pub async fn log(&self, id: &str) -> Result<Vec<DeploymentLogLine>> {
        self.owner
            .get(&format!("/v1/deployments/{id}/log?after=0"))
            .await
            .map_err(api(format!("GET deployment {id} log")))
    }

    /// The audit log's entries (the export without its checkpoint line).
    pub async fn audit(&self) -> Result<Vec<Value>> {
        let text = self
            .owner
            .get_text("/v1/audit")
            .await
            .map_err(api("GET /v1/audit"))?;
        text.lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).map_err(|e| E2eError::Output {
                    what: format!("audit export line ({e})"),
                    output: l.to_owned(),
                })
            })
            .filter(|v| !matches!(v, Ok(v) if v.get("checkpoint").is_some()))
            .collect()
    }
}
