use super::*;

fn route(host: &str, prefix: &str, methods: &[&str]) -> RouteSpec {
    RouteSpec {
        host: if host.is_empty() {
            HostPattern::Any
        } else {
            HostPattern::parse(host).unwrap()
        },
        path_prefix: prefix.to_owned(),
        methods: if methods.is_empty() {
            None
        } else {
            Some(
                methods
                    .iter()
                    .map(|m| Method::from_bytes(m.as_bytes()).unwrap())
                    .collect(),
            )
        },
    }
}

/// `Matched(i)` as `"m i"`, `NoRoute` as `"404"`, 405 as `"405 <Allow>"`.
fn outcome(table: &RouteTable, host: Option<&str>, path: &str, method: &str) -> String {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    match table.lookup(host, path, &method) {
        Lookup::Matched(index) => format!("m {index}"),
        Lookup::NoRoute => "404".to_owned(),
        Lookup::MethodNotAllowed(allow) => format!("405 {}", allow.to_str().unwrap()),
    }
}

fn check(table: &RouteTable, cases: &[(Option<&str>, &str, &str, &str)]) {
    for &(host, path, method, expected) in cases {
        let actual = outcome(table, host, path, method);
        assert_eq!(actual, expected, "{method} {path} host {host:?}");
    }
}

#[test]
fn host_pattern_parse() {
    let exact = |s: &str| Ok(HostPattern::Exact(s.to_owned()));
    let wildcard = |s: &str| Ok(HostPattern::Wildcard(s.to_owned()));
    let cases: &[(&str, Result<HostPattern, &str>)] = &[
        ("api.example.com", exact("api.example.com")),
        ("API.Example.COM", exact("api.example.com")),
        ("api.example.com.", exact("api.example.com")),
        ("localhost", exact("localhost")),
        ("10.0.0.1", exact("10.0.0.1")),
        ("[::1]", exact("[::1]")),
        ("[2001:DB8::1]", exact("[2001:db8::1]")),
        ("*.example.com", wildcard("example.com")),
        ("*.Eu.Example.com.", wildcard("eu.example.com")),
        ("", Err("empty")),
        ("*", Err("`*`")),
        ("*.", Err("`*`")),
        ("*example.com", Err("`*`")),
        ("api.*.com", Err("`*`")),
        ("*.*.example.com", Err("`*`")),
        ("api.example.com:8080", Err("port")),
        ("[::1]:8080", Err("port")),
        ("[not-ipv6]", Err("ipv6")),
        ("api example.com", Err("whitespace")),
        (" api.example.com", Err("whitespace")),
        ("api..example.com", Err("empty label")),
        (".example.com", Err("empty label")),
        ("api.example.com/", Err("invalid character")),
    ];
    for (input, expected) in cases {
        match (HostPattern::parse(input), expected) {
            (Ok(actual), Ok(expected)) => assert_eq!(&actual, expected, "{input:?}"),
            (Err(message), Err(needle)) => {
                assert!(
                    message.contains(needle),
                    "{input:?}: {message:?} lacks {needle:?}"
                );
                assert!(message.starts_with("host"), "{message:?}");
            }
            (actual, expected) => panic!("{input:?}: got {actual:?}, want {expected:?}"),
        }
    }
}

#[test]
fn host_tiers() {
    let table = RouteTable::new(vec![
        route("api.example.com", "/", &[]),  // 0
        route("*.example.com", "/", &[]),    // 1
        route("*.eu.example.com", "/", &[]), // 2
        route("", "/", &[]),                 // 3
        route("[::1]", "/", &[]),            // 4
        route("*.other.test", "/only", &[]), // 5
        route("exact.test", "/only", &[]),   // 6
    ]);
    check(
        &table,
        &[
            // Exact beats wildcard beats none; case and port ignored (the trailing dot
            // is removed before, by `routing::host`, and tested there).
            (Some("api.example.com"), "/", "GET", "m 0"),
            (Some("API.Example.Com:8443"), "/x", "GET", "m 0"),
            (Some("web.example.com"), "/", "GET", "m 1"),
            (Some("a.b.c.example.com"), "/", "GET", "m 1"),
            (Some("WEB.EXAMPLE.COM:80"), "/", "GET", "m 1"),
            // The longest wildcard suffix wins.
            (Some("x.eu.example.com"), "/", "GET", "m 2"),
            (Some("y.x.eu.example.com"), "/", "GET", "m 2"),
            (Some("eu.example.com"), "/", "GET", "m 1"),
            // A wildcard never matches the bare domain, or an empty label.
            (Some("example.com"), "/", "GET", "m 3"),
            (Some(".example.com"), "/", "GET", "m 3"),
            (Some("a..example.com"), "/", "GET", "m 3"),
            (Some("evilexample.com"), "/", "GET", "m 3"),
            (Some("unknown.test"), "/", "GET", "m 3"),
            (None, "/", "GET", "m 3"),
            (Some(""), "/", "GET", "m 3"),
            // IPv6 literals, with and without port.
            (Some("[::1]"), "/", "GET", "m 4"),
            (Some("[::1]:8080"), "/", "GET", "m 4"),
            (Some("[::2]:8080"), "/", "GET", "m 3"),
            // No fall-through: the host's tier is chosen even if no prefix matches there.
            (Some("a.other.test"), "/only/x", "GET", "m 5"),
            (Some("a.other.test"), "/elsewhere", "GET", "404"),
            (Some("exact.test"), "/elsewhere", "GET", "404"),
            (Some("exact.test:1"), "/only", "GET", "m 6"),
        ],
    );
}

#[test]
fn tier_exists_only_if_a_route_names_the_host() {
    let table = RouteTable::new(vec![
        route("*.example.com", "/w", &[]), // 0
        route("", "/", &["GET"]),          // 1
    ]);
    check(
        &table,
        &[
            (Some("a.example.com"), "/w", "GET", "m 0"),
            (Some("a.example.com"), "/", "GET", "404"),
            (Some("other.test"), "/w", "GET", "m 1"),
            (None, "/w", "POST", "405 GET"),
        ],
    );
    // Without host-less routes, an unknown host or no host routes nowhere.
    let table = RouteTable::new(vec![route("api.test", "/", &[])]);
    check(
        &table,
        &[
            (Some("api.test"), "/", "GET", "m 0"),
            (Some("other.test"), "/", "GET", "404"),
            (None, "/", "GET", "404"),
        ],
    );
}

#[test]
fn prefixes_and_methods() {
    let table = RouteTable::new(vec![
        route("", "/orders", &["GET", "HEAD"]),       // 0
        route("", "/orders", &["POST"]),              // 1
        route("", "/orders/admin", &["DELETE"]),      // 2
        route("", "/orders", &["GET", "PUT"]),        // 3: shadowed for GET by 0
        route("", "/orders/admin/keys", &[]),         // 4
        route("", "/", &["GET"]),                     // 5
        route("", "/x/y/z", &["PATCH", "GET"]),       // 6
        route("", "/ext", &["PURGE", "GET", "LINK"]), // 7
    ]);
    check(
        &table,
        &[
            // Whole-segment prefix.
            (None, "/orders", "GET", "m 0"),
            (None, "/orders/", "GET", "m 0"),
            (None, "/orders/7", "HEAD", "m 0"),
            (None, "/ordersx", "GET", "m 5"),
            (None, "/order", "GET", "m 5"),
            // Config order among equal prefixes; first route allowing the method wins.
            (None, "/orders/7", "POST", "m 1"),
            (None, "/orders/7", "PUT", "m 3"),
            // 405 lists the union of the methods at the longest prefix, in a stable order.
            (None, "/orders/7", "DELETE", "405 GET, HEAD, POST, PUT"),
            // Longest prefix wins, and it is final: no retry at a shorter prefix.
            (None, "/orders/admin", "DELETE", "m 2"),
            (None, "/orders/admin/users", "GET", "405 DELETE"),
            (None, "/orders/admin/keys/1", "OPTIONS", "m 4"),
            (None, "/orders/adminx", "DELETE", "405 GET, HEAD, POST, PUT"),
            // `/` is the catch-all.
            (None, "/", "GET", "m 5"),
            (None, "/anything/else", "GET", "m 5"),
            (None, "/", "POST", "405 GET"),
            // A partial walk down a deeper prefix falls back to the last group seen.
            (None, "/x/y", "GET", "m 5"),
            (None, "/x/y/z/w", "GET", "m 6"),
            (None, "/x/y/z", "PUT", "405 GET, PATCH"),
            // Extension methods after the standard ones, sorted by name.
            (None, "/ext", "PURGE", "m 7"),
            (None, "/ext", "POST", "405 GET, LINK, PURGE"),
        ],
    );
}

#[test]
fn no_catch_all_means_no_route() {
    let table = RouteTable::new(vec![route("", "/api", &[])]);
    check(
        &table,
        &[(None, "/", "GET", "404"), (None, "/apix", "GET", "404")],
    );
    assert_eq!(
        RouteTable::new(Vec::new()).lookup(None, "/", &Method::GET),
        Lookup::NoRoute
    );
}

#[test]
fn ten_thousand_routes() {
    // 100 exact hosts x 50 prefixes, 50 wildcard prefixes and 4,950 host-less ones.
    let mut routes = Vec::new();
    for h in 0..100 {
        for p in 0..50 {
            routes.push(route(
                &format!("h{h}.example.com"),
                &format!("/svc{p}/v1"),
                &["GET"],
            ));
        }
    }
    for p in 0..50 {
        routes.push(route("*.example.com", &format!("/wild{p}"), &["GET"]));
    }
    for p in 0..4950 {
        routes.push(route("", &format!("/api/{}/{p}", p % 7), &["GET", "POST"]));
    }
    assert_eq!(routes.len(), 10_000);
    let table = RouteTable::new(routes);
    let is = |host: Option<&str>, path: &str, method: &str, expected: &str| {
        check(&table, &[(host, path, method, expected)]);
    };
    for h in (0..100).step_by(7) {
        let host = format!("H{h}.example.com:443");
        for p in (0..50).step_by(3) {
            let path = format!("/svc{p}/v1/items/9");
            is(Some(&host), &path, "GET", &format!("m {}", h * 50 + p));
            is(Some(&host), &path, "PUT", "405 GET");
            is(Some(&host), "/svc0/v2", "GET", "404");
        }
    }
    for p in 0..50 {
        let (path, expected) = (format!("/wild{p}/x"), format!("m {}", 5000 + p));
        is(Some("zz.example.com"), &path, "GET", &expected);
    }
    for p in (0..4950).step_by(13) {
        let path = format!("/api/{}/{p}/deeper", p % 7);
        let expected = format!("m {}", 5050 + p);
        is(Some("other.test"), &path, "POST", &expected);
        is(None, &path, "DELETE", "405 GET, POST");
    }
    is(None, "/api/1", "GET", "404");
}
