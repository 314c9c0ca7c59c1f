//! The example configs in config/, one per real token shape (issue 3), each exercised end to
//! end: the config file as shipped (listeners and upstream pointed at loopback test servers,
//! the identity provider's URLs given through its environment variables), real tokens of that
//! shape, and what the upstream receives.

mod support;

use http::Method;
use serde_json::json;
use support::echo::Echo;
use support::gateway::{request, Gateway, Reply};
use support::idp::Idp;

/// The shipped config file with its listeners on free ports and its upstream on `echo`.
fn shipped(file: &str, echo: &Echo) -> String {
    let path = format!("{}/config/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("example config");
    assert!(
        text.contains("http://127.0.0.1:9000"),
        "{file} keeps its upstream example"
    );
    text.replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9090", "127.0.0.1:0")
        .replace("http://127.0.0.1:9000", &echo.url(""))
}

async fn call(gateway: &Gateway, method: Method, path: &str, token: &str) -> Reply {
    let mut request = request(method, path);
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    gateway.send(request).await
}

#[tokio::test]
async fn entra_external_id_v2_and_v1() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    let orders_app = "6f1e3c52-0000-4000-8000-00000000a001";
    let billing_app = "6f1e3c52-0000-4000-8000-00000000b002";
    std::env::set_var("ENTRA_ISSUER", idp.issuer());
    std::env::set_var("ENTRA_JWKS_URI", idp.jwks_uri());
    std::env::set_var("ENTRA_ORDERS_APP_ID", orders_app);
    std::env::set_var("ENTRA_BILLING_APP_ID", billing_app);
    std::env::set_var(
        "ENTRA_V1_ISSUER",
        "https://sts.windows.net/72f988bf-tenant/",
    );
    std::env::set_var("ENTRA_ORDERS_APP_ID_URI", "api://orders-prod");
    let gateway = Gateway::from_toml(shipped("entra.toml", &echo))
        .start()
        .await;

    // Application permission in `roles`, client in `azp`, tenant in `tid`.
    let app = idp
        .token()
        .aud(orders_app)
        .sub("0c5e-service-principal")
        .claim("roles", json!(["Orders.Read"]))
        .claim("azp", json!("3d7b-caller-app"))
        .claim("tid", json!("72f988bf-tenant"))
        .claim("ver", json!("2.0"))
        .sign();
    let reply = call(&gateway, Method::GET, "/orders/7", &app).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.echoed();
    assert_eq!(seen.header("x-auth-scopes"), Some("Orders.Read"));
    assert_eq!(seen.header("x-auth-client-id"), Some("3d7b-caller-app"));
    assert_eq!(seen.header("x-auth-tenant"), Some("72f988bf-tenant"));
    assert_eq!(
        seen.header("x-auth-subject"),
        Some("0c5e-service-principal")
    );

    // The same tenant's token for the orders API is refused by the billing API's entry.
    call(&gateway, Method::GET, "/billing/1", &app)
        .await
        .assert_error(401, "invalid_token");
    let billing = idp
        .token()
        .aud(&format!("api://{billing_app}"))
        .claim("roles", json!(["Billing.Read"]))
        .claim("appid", json!("v1-caller"))
        .sign();
    let reply = call(&gateway, Method::GET, "/billing/1", &billing).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.echoed().header("x-auth-client-id"),
        Some("v1-caller"),
        "appid (v1.0)"
    );

    // Entra v1.0: `iss` https://sts.windows.net/<tid>/, `aud` the custom Application ID URI,
    // the caller in `appid`, the same tenant keys.
    let v1 = idp
        .token()
        .iss("https://sts.windows.net/72f988bf-tenant/")
        .aud("api://orders-prod")
        .claim("roles", json!(["Orders.Read"]))
        .claim("appid", json!("3d7b-caller-app"))
        .claim("tid", json!("72f988bf-tenant"))
        .claim("ver", json!("1.0"))
        .sign();
    let reply = call(&gateway, Method::GET, "/orders/7", &v1).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.echoed();
    assert_eq!(
        seen.header("x-auth-issuer"),
        Some("https://sts.windows.net/72f988bf-tenant/")
    );
    assert_eq!(seen.header("x-auth-client-id"), Some("3d7b-caller-app"));
    // A v1.0 token for the App ID URI is not a v2.0 token for the app id, and vice versa.
    let mixed = idp
        .token()
        .iss("https://sts.windows.net/72f988bf-tenant/")
        .aud(orders_app)
        .claim("roles", json!(["Orders.Read"]))
        .sign();
    call(&gateway, Method::GET, "/orders/7", &mixed)
        .await
        .assert_error(401, "invalid_token");
    call(&gateway, Method::GET, "/billing/1", &v1)
        .await
        .assert_error(401, "invalid_token");

    // A delegated permission in `scp` also counts; a token with neither is refused with 403.
    let delegated = idp
        .token()
        .aud(orders_app)
        .claim("scp", json!("Orders.ReadWrite"))
        .sign();
    assert_eq!(
        call(&gateway, Method::GET, "/orders/7", &delegated)
            .await
            .status,
        200
    );
    let none = idp
        .token()
        .aud(orders_app)
        .claim("roles", json!(["Other.Read"]))
        .sign();
    call(&gateway, Method::GET, "/orders/7", &none)
        .await
        .assert_error(403, "insufficient_scope");
}

#[tokio::test]
async fn cognito_client_credentials() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    std::env::set_var("COGNITO_ISSUER", idp.issuer());
    std::env::set_var("COGNITO_JWKS_URI", idp.jwks_uri());
    std::env::set_var("COGNITO_CLIENT_ID", "4q1kcm2examplecl1ent");
    let gateway = Gateway::from_toml(shipped("cognito.toml", &echo))
        .start()
        .await;

    let cognito = || {
        idp.token()
            .without("aud")
            .client_id("4q1kcm2examplecl1ent")
            .claim("token_use", json!("access"))
            .scope("orders-api/orders.read")
    };
    let reply = call(&gateway, Method::GET, "/orders", &cognito().sign()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.echoed().header("x-auth-client-id"),
        Some("4q1kcm2examplecl1ent")
    );
    assert_eq!(
        reply.echoed().header("x-auth-scopes"),
        Some("orders-api/orders.read")
    );

    let id_token = cognito().claim("token_use", json!("id")).sign();
    call(&gateway, Method::GET, "/orders", &id_token)
        .await
        .assert_error(401, "invalid_token");
    let stranger = cognito().client_id("another-app-client").sign();
    call(&gateway, Method::GET, "/orders", &stranger)
        .await
        .assert_error(401, "invalid_token");
    call(&gateway, Method::POST, "/orders", &cognito().sign())
        .await
        .assert_error(403, "insufficient_scope");
}

#[tokio::test]
async fn rs256_provider_with_org_claim() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    std::env::set_var("PARTNER_ISSUER", idp.issuer());
    std::env::set_var("PARTNER_JWKS_URI", idp.jwks_uri());
    let gateway = Gateway::from_toml(shipped("rs256-org.toml", &echo))
        .start()
        .await;

    let token = idp
        .token()
        .aud("https://api.example.com/partners")
        .claim("org", json!("acme-corp"))
        .scope("reports:read profile")
        .sign();
    let mut spoofing = request(Method::GET, "/reports/q3");
    spoofing
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    spoofing
        .headers_mut()
        .insert("x-auth-org", "evil-corp".parse().unwrap());
    let reply = gateway.send(spoofing).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.echoed().header_all("x-auth-org"), ["acme-corp"]);
    assert_eq!(
        reply.echoed().header("x-auth-scopes"),
        Some("reports:read profile")
    );

    let no_scope = idp
        .token()
        .aud("https://api.example.com/partners")
        .scope("profile")
        .sign();
    call(&gateway, Method::GET, "/reports/q3", &no_scope)
        .await
        .assert_error(403, "insufficient_scope");

    // Implied scopes: `admin` is full access, `reports:write` includes `reports:read`; the
    // upstream still sees the scopes the token holds.
    for scope in ["admin", "reports:write"] {
        let implied = idp
            .token()
            .aud("https://api.example.com/partners")
            .scope(scope)
            .sign();
        let reply = call(&gateway, Method::GET, "/reports/q3", &implied).await;
        assert_eq!(reply.status, 200, "{scope}: {}", reply.text());
        assert_eq!(reply.echoed().header("x-auth-scopes"), Some(scope));
    }

    // The registered client `partner-a` may call from its networks only (loopback here).
    let partner = idp
        .token()
        .aud("https://api.example.com/partners")
        .client_id("partner-a")
        .scope("reports:read")
        .sign();
    let reply = call(&gateway, Method::GET, "/reports/q3", &partner).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

#[tokio::test]
async fn hs256_with_secret_from_the_environment() {
    let echo = Echo::start().await;
    let secret = "hs256-example-secret-0123456789abcdefghij";
    std::env::set_var("ORDERS_HMAC_SECRET", secret);
    let gateway = Gateway::from_toml(shipped("hmac.toml", &echo))
        .start()
        .await;
    let idp = Idp::start().await; // only its token builder: HS256 needs no key server

    let token = |scp: &str, scopes: serde_json::Value| {
        idp.token()
            .iss("https://auth.internal.example")
            .aud("orders")
            .claim("scp", json!(scp))
            .claim("scopes", scopes)
            .sign_with_hmac(secret.as_bytes())
    };
    // The union of the `scp` string and the `scopes` array grants both required scopes.
    let reply = call(
        &gateway,
        Method::GET,
        "/orders/1",
        &token("orders:read", json!(["orders:export"])),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.echoed().header("x-auth-scopes"),
        Some("orders:read orders:export")
    );
    call(
        &gateway,
        Method::GET,
        "/orders/1",
        &token("orders:read", json!([])),
    )
    .await
    .assert_error(403, "insufficient_scope");
    let forged = idp
        .token()
        .iss("https://auth.internal.example")
        .aud("orders")
        .claim("scp", json!("orders:read orders:export"))
        .sign_with_hmac(b"not-the-secret-0123456789abcdefghijkl");
    call(&gateway, Method::GET, "/orders/1", &forged)
        .await
        .assert_error(401, "invalid_token");

    // Same secret, other token classes: a 180-day refresh token and an ID token (aud = the
    // client id) carrying the same scopes are refused.
    let refresh = idp
        .token()
        .iss("https://auth.internal.example")
        .aud("orders")
        .claim("scp", json!("orders:read orders:export"))
        .exp_in(180 * 86_400)
        .sign_with_hmac(secret.as_bytes());
    let reply = call(&gateway, Method::GET, "/orders/1", &refresh).await;
    reply.assert_error(401, "invalid_token");
    assert!(reply.text().contains("lifetime"), "{}", reply.text());
    let id_token = idp
        .token()
        .iss("https://auth.internal.example")
        .aud("web-client-7")
        .claim("scp", json!("orders:read orders:export"))
        .sign_with_hmac(secret.as_bytes());
    call(&gateway, Method::GET, "/orders/1", &id_token)
        .await
        .assert_error(401, "invalid_token");
}

#[tokio::test]
async fn oidc_discovery_with_scope_array() {
    let idp = Idp::start().await;
    let echo = Echo::start().await;
    std::env::set_var("OIDC_ISSUER", idp.issuer());
    let gateway = Gateway::from_toml(shipped("discovery.toml", &echo))
        .start()
        .await;
    assert!(
        idp.discovery_requests() >= 1,
        "keys were found through discovery"
    );

    let token = idp
        .token()
        .aud("inventory")
        .claim("scope", json!(["inventory.read", "inventory.audit"]))
        .sign();
    let reply = call(&gateway, Method::GET, "/inventory/items", &token).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.echoed().header("x-auth-scopes"),
        Some("inventory.read inventory.audit")
    );
    let other = idp
        .token()
        .aud("inventory")
        .claim("scope", json!(["inventory.audit"]))
        .sign();
    call(&gateway, Method::GET, "/inventory/items", &other)
        .await
        .assert_error(403, "insufficient_scope");
}
