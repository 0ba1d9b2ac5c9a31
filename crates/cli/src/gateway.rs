//! `gonka gateway` (a local signing OpenAI endpoint for a developer key) and `gonka chat` (one signed
//! request from the command line).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use gonka_client::gateway::Gateway;
use gonka_client::signing::{RequestChoice, now_ns, signed_headers};
use serde_json::{Value, json};

use crate::keys::KeyringArgs;

#[derive(Args, Debug)]
pub(crate) struct GatewayArgs {
    /// Name of the developer key that signs (and pays for) every request.
    #[arg(long)]
    key: String,
    #[command(flatten)]
    keyring: KeyringArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// The host (transfer agent) to send requests to.
    #[arg(long, env = "GONKA_NODE", default_value = "http://127.0.0.1:26600")]
    node: String,
}

#[derive(Args, Debug)]
pub(crate) struct ChatArgs {
    /// The user message.
    prompt: String,
    /// Name of the developer key that signs and pays.
    #[arg(long, default_value = "developer")]
    key: String,
    #[command(flatten)]
    keyring: KeyringArgs,
    /// The host (transfer agent) to send the request to.
    #[arg(long, env = "GONKA_NODE", default_value = "http://127.0.0.1:26600")]
    node: String,
    /// Completion tokens to reserve.
    #[arg(long, default_value_t = 128)]
    max_tokens: u32,
    /// Print the whole response as JSON.
    #[arg(long)]
    json: bool,
}

#[allow(clippy::print_stdout)]
pub(crate) fn gateway(args: &GatewayArgs) -> anyhow::Result<()> {
    let key = args.keyring.keyring().load(&args.key, args.keyring.passphrase()?.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        // The host may still be starting (as in `gonka devnet`): retry for a minute.
        let mut attempt = 0;
        let gateway = loop {
            match Gateway::connect(key.clone(), &args.node).await {
                Ok(gateway) => break Arc::new(gateway),
                Err(error) if attempt < 120 => {
                    attempt += 1;
                    tracing::debug!(%error, "waiting for the node");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(error) => return Err(error),
            }
        };
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("binding {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!(
            "gonka gateway: signing as {} for transfer agent {} ({}), listening on http://{addr}/v1",
            gateway.account(),
            gateway.transfer_agent(),
            args.node
        );
        println!(
            "try: curl http://{addr}/v1/chat/completions -H 'Content-Type: application/json' -d '{{\"model\": \"{}\", \"messages\": [{{\"role\": \"user\", \"content\": \"Hi!\"}}]}}'",
            gonka_engine::store::DEFAULT_MODEL.name
        );
        let stop = async {
            tokio::select! {
                () = crate::wait_for_termination() => {}
                () = crate::chain::parent_gone() => {}
            }
        };
        axum::serve(listener, gonka_client::gateway::router(gateway)).with_graceful_shutdown(stop).await?;
        anyhow::Ok(())
    })
}

#[allow(clippy::print_stdout)]
pub(crate) fn chat(args: &ChatArgs) -> anyhow::Result<()> {
    let key = args.keyring.keyring().load(&args.key, args.keyring.passphrase()?.as_deref())?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let node = args.node.trim_end_matches('/');
        let http = reqwest::Client::new();
        let status = gonka_client::rest::NodeClient::new(node).status().await?;
        let ta = status.host_address.context("the node does not serve inference")?;
        let models: Value = http.get(format!("{node}/v1/models")).send().await?.json().await?;
        let model = models["data"][0]["id"].as_str().context("the network serves no model")?;
        let model_hash: gonka_primitives::Hash =
            serde_json::from_value(models["data"][0]["content_hash"].clone())
                .context("the network lists its model without a content hash")?;
        let body = serde_json::to_vec(&json!({
            "model": model,
            "messages": [{"role": "user", "content": args.prompt}],
            "max_tokens": args.max_tokens,
        }))?;
        let mut request =
            http.post(format!("{node}/v1/chat/completions")).header("content-type", "application/json");
        let price = gonka_client::rest::NodeClient::new(node).price(model).await?;
        let choice = RequestChoice {
            chain_id: &status.chain.chain_id,
            transfer_agent: ta,
            model: model_hash,
            max_tokens: args.max_tokens,
            timestamp_ns: now_ns(),
            max_price_per_token: gonka_client::signing::price_bound(price.price_per_token),
        };
        for (name, value) in signed_headers(&key, &body, &choice) {
            request = request.header(name, value);
        }
        let response = request.body(body).send().await.with_context(|| format!("cannot reach {node}"))?;
        let code = response.status();
        let answer: Value = response.json().await.context("the answer is not JSON")?;
        if !code.is_success() {
            bail!("{code}: {}", answer["error"]["message"].as_str().unwrap_or("request failed"));
        }
        if args.json {
            println!("{answer}");
        } else {
            println!("{}", answer["choices"][0]["message"]["content"].as_str().unwrap_or(""));
            eprintln!(
                "({} prompt + {} completion tokens, paid by {})",
                answer["usage"]["prompt_tokens"],
                answer["usage"]["completion_tokens"],
                key.address()
            );
        }
        anyhow::Ok(())
    })
}
