//! `keygate`: Keygate from the shell, on `keygate-client` (every path and type from the
//! endpoint table). Human tables by default, `--json` for scripts.
//!
//! Exit codes: 0 done; 1 failed (the API refused, or no answer); 2 wrong usage; 3 the key
//! verified is not valid (`keygate keys verify`); 4 not signed in (no token, or one the
//! server no longer accepts).
//!
//! The credential: `KEYGATE_TOKEN` (a session token or an API key) when set, else the session
//! `keygate login` saved for the URL ([`config`]). The URL: `--url`, else `KEYGATE_URL`, else
//! the last one signed in to, else `http://127.0.0.1:8080`.

mod config;
mod show;

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use keygate_client::{Client, Error, endpoints as e};
use model::api::{
    CreateKeyRequest, DeleteKeyQuery, EventQuery, EventView, KeyListQuery, KeyPatch, KeyView,
    LoginRequest, PageQuery, RollRequest, SettingsPatch, VerifyCode, VerifyRequest,
};
use model::domain::{KeyRole, KeyStatus, PermissionScope};
use model::http::{NoBody, NoQuery};
use time::OffsetDateTime;

use crate::config::Config;

const DEFAULT_URL: &str = "http://127.0.0.1:8080";

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "Keygate from the shell: keys, settings, events, members"
)]
struct Cli {
    /// The Keygate to talk to (`KEYGATE_URL`; default: the last one signed in to, or
    /// http://127.0.0.1:8080).
    #[arg(long, global = true, env = "KEYGATE_URL")]
    url: Option<String>,
    /// Print JSON (one document; `events --follow`: one event per line) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in and keep the session token in the config directory (0600).
    Login {
        /// The account's email (asked when missing).
        #[arg(long)]
        email: Option<String>,
        /// Read the password from stdin's first line instead of asking for it.
        #[arg(long)]
        password_stdin: bool,
    },
    /// End the saved session and forget its token.
    Logout,
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The organization's API key settings: shown, or changed with `set`.
    Settings {
        #[command(subcommand)]
        change: Option<SettingsCommand>,
    },
    /// The audit log, newest first; `--follow` keeps printing new events as they happen.
    Events(EventsArgs),
    /// The organization's members.
    Members,
    /// Print a completion script for a shell (`keygate completions bash > …`).
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Your keys (admins: `--all` for every key of the organization).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum)]
        status: Option<Status>,
        /// Only keys of this namespace (an id).
        #[arg(long)]
        namespace: Option<String>,
        /// Search name, id and owner name or email.
        #[arg(long, short)]
        query: Option<String>,
    },
    /// Create a key; its plaintext is printed to stdout, this once.
    Create {
        name: String,
        /// The namespace (an id; default: the organization).
        #[arg(long)]
        namespace: Option<String>,
        /// A role: viewer or editor (the default when no --permission is given: viewer).
        #[arg(long, value_enum, conflicts_with = "permission")]
        role: Option<Role>,
        /// A permission, optionally limited to resources: `datasets.read` or
        /// `datasets.edit=res_a,res_b`; repeatable.
        #[arg(long)]
        permission: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// When it stops working: an RFC 3339 time (`2027-01-31T00:00:00Z`).
        #[arg(long, value_parser = rfc3339, conflicts_with = "expires_in_days")]
        expires_at: Option<OffsetDateTime>,
        /// When it stops working, in days from now.
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Replace a key's usage policy (rate limits, credits, networks) with what is given:
    /// what is not given goes.
    Policy {
        id: String,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Add to or set a key's credits.
    Credits {
        id: String,
        /// Credits to add.
        #[arg(long, conflicts_with = "set", required_unless_present = "set")]
        add: Option<u64>,
        /// What the credits become.
        #[arg(long)]
        set: Option<u64>,
    },
    /// One key.
    Show { id: String },
    /// Rename a key.
    Rename { id: String, name: String },
    /// Revoke keys: they stop verifying at once.
    Revoke {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// A new secret for a key (printed to stdout, this once); the old one keeps working for
    /// `--grace-seconds`.
    Roll {
        id: String,
        #[arg(long, default_value_t = 0)]
        grace_seconds: u32,
    },
    /// Delete a key and its record.
    Delete {
        id: String,
        /// A member who receives the key's resources.
        #[arg(long)]
        transfer_to: Option<String>,
        /// Delete the resources only the key owns.
        #[arg(long)]
        delete_resources: bool,
    },
    /// Verify a key, read from stdin (so it stays out of the shell's history and `ps`) unless
    /// given; exit 0 when valid, 3 when not.
    Verify {
        /// The key; `-` or nothing reads it from stdin.
        key: Option<String>,
        /// Permissions it must hold; repeatable.
        #[arg(long)]
        permission: Vec<String>,
        /// The resource the permissions must cover.
        #[arg(long)]
        resource: Option<String>,
        /// The namespace it must belong to.
        #[arg(long)]
        namespace: Option<String>,
        /// The address of the caller that presented the key (checked against its networks).
        #[arg(long)]
        client_ip: Option<String>,
        /// What a valid answer spends of its rate limits and credits (default 1; 0 spends
        /// nothing).
        #[arg(long)]
        cost: Option<u32>,
    },
}

/// A key's usage policy (SPEC §4.5) as flags.
#[derive(Args)]
struct PolicyArgs {
    /// A rate limit `NAME=LIMIT/SECONDS` (`api=100/60`: 100 per minute); repeatable.
    #[arg(long = "ratelimit", value_parser = ratelimit)]
    ratelimits: Vec<model::domain::RateLimit>,
    /// Credits that valid answers spend; none: unlimited.
    #[arg(long)]
    credits: Option<u64>,
    /// With --credits: set them back to AMOUNT each day or month, `daily:1000` or
    /// `monthly:50000`.
    #[arg(long, requires = "credits", value_parser = refill)]
    refill: Option<model::domain::Refill>,
    /// A network it may be used from (`203.0.113.0/24`, `2001:db8::/32`, one address);
    /// repeatable. None: any.
    #[arg(long = "allow-cidr")]
    allow_cidr: Vec<String>,
}

impl PolicyArgs {
    fn request(self) -> model::meter::PolicyRequest {
        model::meter::PolicyRequest {
            ratelimits: self.ratelimits,
            credits: self.credits.map(|remaining| model::domain::Credits {
                remaining,
                refill: self.refill,
            }),
            allowed_cidrs: self.allow_cidr,
        }
    }
}

/// `api=100/60`.
fn ratelimit(text: &str) -> Result<model::domain::RateLimit, String> {
    let bad = || format!("`{text}` is not NAME=LIMIT/SECONDS, like api=100/60");
    let (name, rest) = text.split_once('=').ok_or_else(bad)?;
    let (limit, window) = rest.split_once('/').ok_or_else(bad)?;
    Ok(model::domain::RateLimit {
        name: name.to_owned(),
        limit: limit.trim().parse().map_err(|_| bad())?,
        window_seconds: window.trim().parse().map_err(|_| bad())?,
    })
}

/// `daily:1000`.
fn refill(text: &str) -> Result<model::domain::Refill, String> {
    let bad = || format!("`{text}` is not daily:AMOUNT or monthly:AMOUNT");
    let (interval, amount) = text.split_once(':').ok_or_else(bad)?;
    let interval = match interval {
        "daily" => model::domain::RefillInterval::Daily,
        "monthly" => model::domain::RefillInterval::Monthly,
        _ => return Err(bad()),
    };
    Ok(model::domain::Refill {
        interval,
        amount: amount.trim().parse().map_err(|_| bad())?,
    })
}

#[derive(Subcommand)]
enum SettingsCommand {
    /// Change settings; what is not given stays.
    Set {
        /// Whether API keys work at all.
        #[arg(long)]
        api_keys: Option<Toggle>,
        /// The longest lifetime a key may have, in days, or `none`.
        #[arg(long, value_parser = days_or_none)]
        max_expiry_days: Option<Limit>,
        #[arg(long)]
        max_active_keys_per_user: Option<u32>,
        /// Verifications per hour above which a key is flagged, or `none`.
        #[arg(long, value_parser = days_or_none)]
        extensive_use_per_hour: Option<Limit>,
    },
}

#[derive(Args)]
struct EventsArgs {
    /// An event type, or a family such as `key.*`.
    #[arg(long = "type")]
    kind: Option<String>,
    /// Only events of this key.
    #[arg(long)]
    key: Option<String>,
    /// Only events by this user or key.
    #[arg(long)]
    actor: Option<String>,
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Keep printing new events (every 2 s) until interrupted.
    #[arg(long, short)]
    follow: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Status {
    Active,
    Expired,
    Revoked,
}

#[derive(Clone, Copy, ValueEnum)]
enum Role {
    Viewer,
    Editor,
}

#[derive(Clone, Copy, ValueEnum)]
enum Toggle {
    On,
    Off,
}

/// A number, or `none` for no limit.
#[derive(Clone, Copy)]
struct Limit(Option<u64>);

fn days_or_none(s: &str) -> Result<Limit, String> {
    match s {
        "none" => Ok(Limit(None)),
        n => n
            .parse()
            .map(|n| Limit(Some(n)))
            .map_err(|_| format!("`{n}` is neither a number nor `none`")),
    }
}

fn rfc3339(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time ({e})"))
}

/// Why a command failed, and so its exit code.
enum Failure {
    /// 1: the API refused, or there was no answer.
    Failed(String),
    /// 3: the key is not valid.
    Invalid,
    /// 4: no credential, or one the server refused.
    SignedOut(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e.status() {
            Some(401) => Failure::SignedOut(format!(
                "{e}\nSign in with `keygate login`, or set KEYGATE_TOKEN."
            )),
            _ => Failure::Failed(e.to_string()),
        }
    }
}

impl From<String> for Failure {
    fn from(e: String) -> Self {
        Failure::Failed(e)
    }
}

type Done = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("keygate: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid) => ExitCode::from(3),
        Err(Failure::Failed(why)) => {
            eprintln!("keygate: {why}");
            ExitCode::from(1)
        }
        Err(Failure::SignedOut(why)) => {
            eprintln!("keygate: {why}");
            ExitCode::from(4)
        }
    }
}

/// What every command talks to: the URL and, when there is one, the credential.
struct Target {
    url: String,
    client: Client,
    signed_in: bool,
}

impl Target {
    fn resolve(url: Option<String>, config: &Config) -> Self {
        let url = url
            .or_else(|| config.default_url.clone())
            .unwrap_or_else(|| DEFAULT_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        let token = std::env::var("KEYGATE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| config.hosts.get(&url).map(|h| h.token.clone()));
        let anonymous = Client::new(&url);
        Self {
            client: match &token {
                Some(token) => anonymous.with_token(token),
                None => anonymous,
            },
            signed_in: token.is_some(),
            url,
        }
    }

    /// The client, refusing to go on without a credential.
    fn authed(&self) -> Result<&Client, Failure> {
        if self.signed_in {
            Ok(&self.client)
        } else {
            Err(Failure::SignedOut(format!(
                "not signed in to {}: run `keygate login`, or set KEYGATE_TOKEN",
                self.url
            )))
        }
    }
}

async fn run(cli: Cli) -> Done {
    let mut config = Config::load()?;
    let target = Target::resolve(cli.url, &config);
    let json = cli.json;
    match cli.command {
        Command::Login {
            email,
            password_stdin,
        } => login(&target, &mut config, email, password_stdin).await,
        Command::Logout => {
            if target.signed_in {
                // The server ends the session; the token is forgotten even if it cannot.
                let ended = target
                    .client
                    .call::<e::Logout>(&[], &NoBody, &NoQuery)
                    .await;
                if config.hosts.remove(&target.url).is_some() {
                    config.save()?;
                }
                ended.map(drop).or_else(|e| match e.status() {
                    Some(401) => Ok::<(), Failure>(()),
                    _ => Err(e.into()),
                })?;
            }
            eprintln!("Signed out of {}.", target.url);
            Ok(())
        }
        Command::Keys(command) => keys(target.authed()?, command, json).await,
        Command::Settings { change } => settings(target.authed()?, change, json).await,
        Command::Events(args) => events(target.authed()?, args, json).await,
        Command::Members => {
            let mut members = Vec::new();
            let mut query = PageQuery::default();
            loop {
                let page = target
                    .authed()?
                    .call::<e::Members>(&[], &NoBody, &query)
                    .await?;
                members.extend(page.items);
                match page.next_cursor {
                    Some(next) => query.cursor = Some(next),
                    None => break,
                }
            }
            show::print(json, members.as_slice(), show::members)
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "keygate",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    }
}

/// One line of stdin, without its end.
fn read_line() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Failed(format!("stdin: {e}")))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn login(
    target: &Target,
    config: &mut Config,
    email: Option<String>,
    password_stdin: bool,
) -> Done {
    let email = match email {
        Some(email) => email,
        None => {
            eprint!("Email: ");
            read_line()?
        }
    };
    let password = if password_stdin || !std::io::stdin().is_terminal() {
        read_line()?
    } else {
        rpassword::prompt_password("Password: ").map_err(|e| format!("password: {e}"))?
    };
    let session = Client::new(&target.url)
        .call::<e::Login>(&[], &LoginRequest { email, password }, &NoQuery)
        .await
        .map_err(|e| Failure::Failed(e.to_string()))?;
    config.hosts.insert(
        target.url.clone(),
        config::Host {
            token: session.token,
            email: session.user.email.clone(),
        },
    );
    config.default_url = Some(target.url.clone());
    config.save()?;
    eprintln!("Signed in to {} as {}.", target.url, session.user.email);
    Ok(())
}

/// `datasets.edit=res_a,res_b` as a permission limited to two resources.
fn scope(text: &str) -> PermissionScope {
    match text.split_once('=') {
        Some((permission, resources)) => PermissionScope {
            permission: permission.to_owned(),
            resources: Some(resources.split(',').map(str::to_owned).collect()),
        },
        None => PermissionScope {
            permission: text.to_owned(),
            resources: None,
        },
    }
}

async fn keys(client: &Client, command: KeysCommand, json: bool) -> Done {
    match command {
        KeysCommand::List {
            all,
            status,
            namespace,
            query,
        } => {
            let mut query = KeyListQuery {
                all: all.then_some(true),
                status: status.map(|s| match s {
                    Status::Active => KeyStatus::Active,
                    Status::Expired => KeyStatus::Expired,
                    Status::Revoked => KeyStatus::Revoked,
                }),
                namespace,
                q: query,
                ..Default::default()
            };
            let mut keys = Vec::new();
            loop {
                let page = client.call::<e::Keys>(&[], &NoBody, &query).await?;
                keys.extend(page.items);
                match page.next_cursor {
                    Some(next) => query.cursor = Some(next),
                    None => break,
                }
            }
            show::print(json, keys.as_slice(), show::keys)
        }
        KeysCommand::Create {
            name,
            namespace,
            role,
            permission,
            description,
            expires_at,
            expires_in_days,
            policy,
        } => {
            let namespace = match namespace {
                Some(namespace) => namespace,
                None => {
                    client
                        .call::<e::Me>(&[], &NoBody, &NoQuery)
                        .await?
                        .organization
                        .id
                }
            };
            let expires_at = expires_at.or_else(|| {
                expires_in_days
                    .map(|d| OffsetDateTime::now_utc() + time::Duration::days(i64::from(d)))
            });
            let permissions = (!permission.is_empty())
                .then(|| permission.iter().map(|p| scope(p)).collect::<Vec<_>>());
            let role = match (role, &permissions) {
                (Some(Role::Editor), _) => Some(KeyRole::Editor),
                (Some(Role::Viewer), _) | (None, None) => Some(KeyRole::Viewer),
                (None, Some(_)) => None,
            };
            let policy = policy.request();
            let body = CreateKeyRequest {
                name,
                description,
                namespace,
                role,
                permissions,
                expires_at,
                ratelimits: policy.ratelimits,
                credits: policy.credits,
                allowed_cidrs: policy.allowed_cidrs,
            };
            let created = client.call::<e::CreateKey>(&[], &body, &NoQuery).await?;
            shown_once(json, &created.record, &created.key, "Created")
        }
        KeysCommand::Policy { id, policy } => {
            let body = policy.request();
            let key = client.call::<e::SetPolicy>(&[&id], &body, &NoQuery).await?;
            show::print(json, &key, show::key)
        }
        KeysCommand::Credits { id, add, set } => {
            let body = match (add, set) {
                (Some(n), _) => model::meter::CreditChange::Add(n),
                (None, Some(n)) => model::meter::CreditChange::Set(n),
                (None, None) => return Err(Failure::Failed("give --add or --set".into())),
            };
            let key = client
                .call::<e::ChangeCredits>(&[&id], &body, &NoQuery)
                .await?;
            show::print(json, &key, show::key)
        }
        KeysCommand::Show { id } => {
            let key = client.call::<e::GetKey>(&[&id], &NoBody, &NoQuery).await?;
            show::print(json, &key, show::key)
        }
        KeysCommand::Rename { id, name } => {
            let patch = KeyPatch {
                name: Some(name),
                ..Default::default()
            };
            let key = client
                .call::<e::UpdateKey>(&[&id], &patch, &NoQuery)
                .await?;
            show::print(json, &key, show::key)
        }
        KeysCommand::Revoke { ids } => {
            let mut revoked = Vec::new();
            for id in &ids {
                revoked.push(
                    client
                        .call::<e::RevokeKey>(&[id], &NoBody, &NoQuery)
                        .await?,
                );
            }
            show::print(json, revoked.as_slice(), show::keys)
        }
        KeysCommand::Roll { id, grace_seconds } => {
            let body = RollRequest { grace_seconds };
            let rolled = client.call::<e::RollKey>(&[&id], &body, &NoQuery).await?;
            shown_once(json, &rolled.record, &rolled.key, "Rolled")
        }
        KeysCommand::Delete {
            id,
            transfer_to,
            delete_resources,
        } => {
            let query = DeleteKeyQuery {
                transfer_to,
                delete_resources: delete_resources.then_some(true),
            };
            client.call::<e::DeleteKey>(&[&id], &NoBody, &query).await?;
            if !json {
                eprintln!("Deleted {id}.");
            }
            Ok(())
        }
        KeysCommand::Verify {
            key,
            permission,
            resource,
            namespace,
            client_ip,
            cost,
        } => {
            let key = match key.filter(|k| k != "-") {
                Some(key) => key,
                None => read_line()?,
            };
            let body = VerifyRequest {
                key,
                permissions: (!permission.is_empty()).then_some(permission),
                resource,
                namespace,
                cost,
                client_ip,
            };
            let answer = client.call::<e::Verify>(&[], &body, &NoQuery).await?;
            show::print(json, &answer, show::verdict)?;
            match answer.code {
                VerifyCode::Valid => Ok(()),
                _ => Err(Failure::Invalid),
            }
        }
    }
}

/// A new secret: on stdout, alone (or inside the JSON answer), and nowhere else; what the
/// key is goes to stderr.
fn shown_once(json: bool, record: &KeyView, key: &str, what: &str) -> Done {
    if json {
        let mut value = serde_json::to_value(record).map_err(|e| e.to_string())?;
        value["key"] = key.into();
        println!("{value:#}");
    } else {
        println!("{key}");
        eprintln!(
            "{what} {} ({}). This is the only time the key is shown: store it now.",
            record.id, record.name
        );
    }
    Ok(())
}

async fn settings(client: &Client, change: Option<SettingsCommand>, json: bool) -> Done {
    let view = match change {
        None => client.call::<e::Settings>(&[], &NoBody, &NoQuery).await?,
        Some(SettingsCommand::Set {
            api_keys,
            max_expiry_days,
            max_active_keys_per_user,
            extensive_use_per_hour,
        }) => {
            let days = |limit: Limit| {
                limit
                    .0
                    .map(|d| u32::try_from(d).map_err(|_| format!("{d} days is too many")))
                    .transpose()
            };
            let patch = SettingsPatch {
                api_keys_enabled: api_keys.map(|t| matches!(t, Toggle::On)),
                max_expiry_days: max_expiry_days.map(days).transpose()?,
                max_active_keys_per_user,
                extensive_use_per_hour: extensive_use_per_hour.map(|l| l.0),
            };
            client
                .call::<e::UpdateSettings>(&[], &patch, &NoQuery)
                .await?
        }
    };
    show::print(json, &view, show::settings)
}

async fn events(client: &Client, args: EventsArgs, json: bool) -> Done {
    let mut query = EventQuery {
        kind: args.kind,
        key_id: args.key,
        actor: args.actor,
        limit: Some(args.limit),
        ..Default::default()
    };
    let page = client.call::<e::Events>(&[], &NoBody, &query).await?;
    if !args.follow {
        return show::print(json, page.items.as_slice(), show::events);
    }
    // Oldest first from here on, each event once, as they come.
    let mut seen: std::collections::HashSet<String> = Default::default();
    let mut since = None;
    let mut batch: Vec<EventView> = page.items;
    loop {
        batch.retain(|event| seen.insert(event.id.clone()));
        batch.reverse();
        for event in &batch {
            since = Some(since.map_or(event.at, |t: OffsetDateTime| t.max(event.at)));
            show::follow_line(json, event)?;
        }
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        query.since = since;
        query.cursor = None;
        batch = client.call::<e::Events>(&[], &NoBody, &query).await?.items;
    }
}
