//! The Mailgun-compatible suppressions API (SPEC §6.1) over real HTTP: paths, fields, messages
//! and status codes as Mailgun's, atomic batches, paging by URL, CSV import.

use std::time::Duration;

use quell::store::{List, Reason, Scope};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};

use crate::support::{Quell, API_KEY, WAIT};

const DOMAIN: &str = "mg.example.com";

/// A Mailgun API client for one running quell.
struct Api {
    q: Quell,
    http: reqwest::Client,
}

impl Api {
    async fn start() -> Api {
        Api::with(Quell::start().await)
    }

    fn with(q: Quell) -> Api {
        Api {
            q,
            http: reqwest::Client::new(),
        }
    }

    /// The full URL of `/v3/{DOMAIN}{path}`.
    fn url(&self, path: &str) -> String {
        self.q.url(&format!("/v3/{DOMAIN}{path}"))
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http
            .request(method, url)
            .basic_auth("api", Some(API_KEY))
    }

    /// Sends `req`; every answer, errors included, must be JSON.
    async fn send(req: RequestBuilder) -> (StatusCode, Value) {
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text:?}"));
        (status, value)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        Api::send(self.request(Method::GET, &self.url(path))).await
    }

    async fn get_url(&self, url: &str) -> (StatusCode, Value) {
        Api::send(self.request(Method::GET, url)).await
    }

    async fn post_json(&self, path: &str, body: Value) -> (StatusCode, Value) {
        Api::send(self.request(Method::POST, &self.url(path)).json(&body)).await
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        Api::send(self.request(Method::POST, &self.url(path)).form(form)).await
    }

    async fn delete(&self, path: &str) -> (StatusCode, Value) {
        Api::send(self.request(Method::DELETE, &self.url(path))).await
    }

    async fn import(&self, resource: &str, csv: &str) -> (StatusCode, Value) {
        let form = Form::new().text("note", "not the file").part(
            "upload",
            Part::bytes(csv.as_bytes().to_vec()).file_name("list.csv"),
        );
        let url = self.url(&format!("/{resource}/import"));
        Api::send(self.request(Method::POST, &url).multipart(form)).await
    }

    /// The addresses of the first page (limit 1000) of `resource`.
    async fn addresses(&self, resource: &str) -> Vec<String> {
        let (status, body) = self.get(&format!("/{resource}?limit=1000")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        addresses(&body)
    }

    /// Polls the list until it holds at least `n` entries (an import is applied after its 202).
    async fn wait_for(&self, resource: &str, n: usize) -> Vec<String> {
        tokio::time::timeout(WAIT, async {
            loop {
                let got = self.addresses(resource).await;
                if got.len() >= n {
                    return got;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{resource}: fewer than {n} entries after the import"))
    }
}

fn addresses(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {page}"))
        .iter()
        .map(|i| i["address"].as_str().expect("address").to_string())
        .collect()
}

#[tokio::test]
async fn add_one_json_object_then_get_it() {
    let api = Api::start().await;
    let (status, body) = api
        .post_json(
            "/unsubscribes",
            json!({"address": "Alice@Example.com", "tags": ["news"], "created_at": "Fri, 21 Oct 2011 11:02:55 UTC"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"message": "Address has been added to the unsubscribes table", "address": "Alice@Example.com"})
    );
    let (status, body) = api.get("/unsubscribes/ALICE%40example.com").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"address": "alice@example.com", "tags": ["news"], "created_at": "Fri, 21 Oct 2011 11:02:55 UTC"})
    );
    // Stored in the domain's scope, as an unsubscribe that never expires.
    let entries = api
        .q
        .state
        .store
        .suppressions_of(&Scope::Domain(DOMAIN.into()), "alice@example.com")
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].0, entries[0].1.reason, entries[0].1.expires_at),
        (List::Unsubscribes, Reason::Unsub, None)
    );
}

#[tokio::test]
async fn add_one_form_record_with_repeated_tags() {
    let api = Api::start().await;
    let (status, body) = api
        .post_form(
            "/unsubscribes",
            &[
                ("address", "bob@example.com"),
                ("tag", "news"),
                ("tag", "promo"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["message"],
        "Address has been added to the unsubscribes table"
    );
    let (_, body) = api.get("/unsubscribes/bob@example.com").await;
    assert_eq!(body["tags"], json!(["news", "promo"]));
    // Without a tag the record covers all mail.
    api.post_form("/unsubscribes", &[("address", "carol@example.com")])
        .await;
    let (_, body) = api.get("/unsubscribes/carol@example.com").await;
    assert_eq!(body["tags"], json!(["*"]));
}

#[tokio::test]
async fn add_a_batch_of_two() {
    let api = Api::start().await;
    let (status, body) = api
        .post_json(
            "/unsubscribes",
            json!([{"address": "b@example.com", "tags": ["x"]}, {"address": "a@example.com"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"message": "2 addresses have been added to the unsubscribes table"})
    );
    assert_eq!(
        api.addresses("unsubscribes").await,
        ["a@example.com", "b@example.com"]
    );
}

#[tokio::test]
async fn a_batch_with_one_bad_record_writes_nothing() {
    let api = Api::start().await;
    let (status, body) = api
        .post_json(
            "/unsubscribes",
            json!([{"address": "good@example.com"}, {"address": "not an address"}, {"address": "also@example.com"}]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("item 1: address \"not an address\""),
        "{message}"
    );
    assert!(api.addresses("unsubscribes").await.is_empty());

    let (status, body) = api
        .post_json("/bounces", json!([{"address": "good@example.com"}, {"address": "b@example.com", "created_at": "soon"}]))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("item 1: created_at"),
        "{body}"
    );
    assert!(api.addresses("bounces").await.is_empty());
}

#[tokio::test]
async fn more_than_1000_records_are_refused() {
    let api = Api::start().await;
    let batch: Vec<Value> = (0..1001)
        .map(|i| json!({"address": format!("u{i}@example.com")}))
        .collect();
    let (status, body) = api.post_json("/unsubscribes", Value::Array(batch)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("1001"), "{body}");
    assert!(api.addresses("unsubscribes").await.is_empty());
    // Exactly 1000 is fine.
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"address": format!("u{i}@example.com")}))
        .collect();
    let (status, body) = api.post_json("/unsubscribes", Value::Array(batch)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.addresses("unsubscribes").await.len(), 1000);
}

#[tokio::test]
async fn malformed_bodies_get_a_json_400() {
    let api = Api::start().await;
    let req = api
        .request(Method::POST, &api.url("/unsubscribes"))
        .header("content-type", "application/json")
        .body("[{\"address\": ");
    let (status, body) = Api::send(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["message"].as_str().unwrap().contains("JSON"), "{body}");
    let (status, body) = api.post_form("/unsubscribes", &[("tag", "x")]).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"message": "address is missing"})
        )
    );
}

#[tokio::test]
async fn limit_over_1000_is_refused() {
    let api = Api::start().await;
    let (status, body) = api.get("/unsubscribes?limit=1001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
    let (status, _) = api.get("/unsubscribes?limit=1000").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn get_one_missing_is_404() {
    let api = Api::start().await;
    let (status, body) = api.get("/unsubscribes/nobody@example.com").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"message": "Address not found in unsubscribers table"})
        )
    );
    // Another domain's entry is not this domain's.
    api.post_form("/unsubscribes", &[("address", "x@example.com")])
        .await;
    let (status, _) = Api::send(api.request(
        Method::GET,
        &api.q.url("/v3/other.example/unsubscribes/x@example.com"),
    ))
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_one_then_it_is_gone() {
    let api = Api::start().await;
    api.post_form("/unsubscribes", &[("address", "del@example.com")])
        .await;
    let (status, body) = api.delete("/unsubscribes/Del%40Example.com").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"message": "Unsubscribe event has been removed", "address": "Del@Example.com"})
    );
    assert_eq!(
        api.get("/unsubscribes/del@example.com").await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = api.delete("/unsubscribes/del@example.com").await;
    assert_eq!(
        (status, body["message"].clone()),
        (
            StatusCode::NOT_FOUND,
            json!("Address not found in unsubscribers table")
        )
    );
}

#[tokio::test]
async fn delete_with_tag_removes_only_that_tag() {
    let api = Api::start().await;
    api.post_form(
        "/unsubscribes",
        &[("address", "t@example.com"), ("tag", "a"), ("tag", "b")],
    )
    .await;
    let (status, body) = api.delete("/unsubscribes/t@example.com?tag=a").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Unsubscribe event has been removed");
    assert_eq!(
        api.get("/unsubscribes/t@example.com").await.1["tags"],
        json!(["b"])
    );
    // A tag the entry does not have: 404, entry unchanged.
    let (status, _) = api.delete("/unsubscribes/t@example.com?tag=zzz").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The tag as a form body, as some clients send it; the last tag removes the entry.
    let req = api
        .request(Method::DELETE, &api.url("/unsubscribes/t@example.com"))
        .form(&[("tag", "b")]);
    assert_eq!(Api::send(req).await.0, StatusCode::OK);
    assert_eq!(
        api.get("/unsubscribes/t@example.com").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delete_all_clears_only_that_list_of_that_domain() {
    let api = Api::start().await;
    api.post_json(
        "/unsubscribes",
        json!([{"address": "a@x.io"}, {"address": "b@x.io"}, {"address": "c@x.io"}]),
    )
    .await;
    api.post_form("/bounces", &[("address", "a@x.io")]).await;
    let other = api.q.url("/v3/other.example/unsubscribes");
    Api::send(
        api.request(Method::POST, &other)
            .form(&[("address", "a@x.io")]),
    )
    .await;

    let (status, body) = api.delete("/unsubscribes").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"message": "Unsubscribe addresses for this domain have been removed"})
    );
    assert!(api.addresses("unsubscribes").await.is_empty());
    assert_eq!(api.addresses("bounces").await, ["a@x.io"]);
    let (_, page) = api.get_url(&other).await;
    assert_eq!(addresses(&page), ["a@x.io"]);
}

#[tokio::test]
async fn paging_forward_and_back_by_url() {
    let api = Api::start().await;
    let all = ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io"];
    let batch: Vec<Value> = all.iter().rev().map(|a| json!({"address": a})).collect();
    api.post_json("/unsubscribes", Value::Array(batch)).await;

    let (status, mut page) = api.get("/unsubscribes?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let prefix = api.url("/unsubscribes?");
    for link in ["first", "next", "previous", "last"] {
        let url = page["paging"][link].as_str().unwrap();
        assert!(
            url.starts_with(&prefix) && url.contains("limit=2"),
            "{link}: {url}"
        );
    }
    let mut forward = Vec::new();
    let mut pages = 0;
    loop {
        let got = addresses(&page);
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 2);
        forward.extend(got);
        pages += 1;
        assert!(pages <= 5, "paging does not end");
        let next = page["paging"]["next"].as_str().unwrap().to_string();
        page = api.get_url(&next).await.1;
    }
    assert_eq!(forward, all);
    assert_eq!(pages, 3);

    // From the empty page past the end, back to the start.
    let mut backward: Vec<String> = Vec::new();
    loop {
        let previous = page["paging"]["previous"].as_str().unwrap().to_string();
        page = api.get_url(&previous).await.1;
        let got = addresses(&page);
        if got.is_empty() {
            break;
        }
        assert!(backward.len() < 5, "paging back does not end");
        backward.splice(0..0, got);
    }
    assert_eq!(backward, all);

    let (_, last) = api.get_url(page["paging"]["last"].as_str().unwrap()).await;
    assert_eq!(addresses(&last), ["d@x.io", "e@x.io"]);
    let (_, first) = api.get_url(page["paging"]["first"].as_str().unwrap()).await;
    assert_eq!(addresses(&first), ["a@x.io", "b@x.io"]);
}

#[tokio::test]
async fn term_filters_by_prefix_and_stays_in_the_urls() {
    let api = Api::start().await;
    let batch = json!([{"address": "alice@x.io"}, {"address": "albert@x.io"}, {"address": "bob@x.io"}, {"address": "zal@x.io"}]);
    api.post_json("/unsubscribes", batch).await;
    let (status, page) = api.get("/unsubscribes?term=AL&limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(addresses(&page), ["albert@x.io"]);
    let next = page["paging"]["next"].as_str().unwrap();
    assert!(next.contains("term=al"), "{next}");
    let (_, page) = api.get_url(next).await;
    assert_eq!(addresses(&page), ["alice@x.io"]);
}

#[tokio::test]
async fn csv_import_applies_good_rows_and_skips_bad_ones() {
    let api = Api::start().await;
    let csv = "address,tags,created_at\n\
               one@example.com,news,\"Fri, 21 Oct 2011 11:02:55 UTC\"\n\
               not-an-address,,\n\
               two@example.com,,\n\
               three@example.com,,yesterday\n\
               Four@Example.com,\"a,b\",\n";
    let (status, body) = api.import("unsubscribes", csv).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"message": "file uploaded successfully"}));
    let got = api.wait_for("unsubscribes", 3).await;
    assert_eq!(
        got,
        ["four@example.com", "one@example.com", "two@example.com"]
    );
    let (_, one) = api.get("/unsubscribes/one@example.com").await;
    assert_eq!(
        one,
        json!({"address": "one@example.com", "tags": ["news"], "created_at": "Fri, 21 Oct 2011 11:02:55 UTC"})
    );
    assert_eq!(
        api.get("/unsubscribes/four@example.com").await.1["tags"],
        json!(["a", "b"])
    );
}

#[tokio::test]
async fn csv_import_with_a_wrong_header_is_refused() {
    let api = Api::start().await;
    let (status, body) = api
        .import("unsubscribes", "email,tags\na@example.com,\n")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("\"email\""),
        "{body}"
    );
    // A bounces header is not a complaints header.
    let (status, _) = api
        .import(
            "complaints",
            "address,code,error,created_at\na@example.com,550,,\n",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Without any file part.
    let form = Form::new().text("address", "a@example.com");
    let req = api
        .request(Method::POST, &api.url("/unsubscribes/import"))
        .multipart(form);
    assert_eq!(Api::send(req).await.0, StatusCode::BAD_REQUEST);
    // Nothing was applied: a later good import is the only thing on the lists.
    let (status, _) = api.import("complaints", "address\nc@example.com\n").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(api.wait_for("complaints", 1).await, ["c@example.com"]);
    assert!(api.addresses("unsubscribes").await.is_empty());
}

#[tokio::test]
async fn csv_import_over_25_mb_is_refused() {
    let api = Api::start().await;
    let mut csv = String::from("address\nbig@example.com\n");
    csv.push_str(&"x".repeat(25 * 1024 * 1024));
    let (status, body) = api.import("unsubscribes", &csv).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("25 MB"),
        "{body}"
    );
    assert!(api
        .q
        .state
        .store
        .suppressions_of(&Scope::Domain(DOMAIN.into()), "big@example.com")
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn requests_without_a_valid_key_are_401() {
    let api = Api::start().await;
    let url = api.url("/unsubscribes");
    let resp = api.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = api
        .http
        .get(&url)
        .basic_auth("api", Some("wrong-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = api
        .http
        .post(&url)
        .basic_auth("api", Some("wrong-key"))
        .form(&[("address", "a@x.io")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(api
        .q
        .state
        .store
        .suppressions_of(&Scope::Domain(DOMAIN.into()), "a@x.io")
        .unwrap()
        .is_empty());
    let resp = api
        .http
        .get(&url)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // No keys configured: the management API is off, even for the old key.
    let api = Api::with(Quell::start_with(|c| c.http.api_keys.clear()).await);
    let (status, _) = api.get("/unsubscribes").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bounces_have_code_and_error() {
    let api = Api::start().await;
    let (status, body) = api
        .post_form(
            "/bounces",
            &[
                ("address", "b@example.com"),
                ("code", "554"),
                ("error", "relay denied"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"message": "Address has been added to the bounces table", "address": "b@example.com"})
    );
    let (_, body) = api.get("/bounces/b@example.com").await;
    let created_at = body["created_at"].as_str().unwrap().to_string();
    assert!(created_at.ends_with(" UTC"), "{created_at}");
    assert_eq!(
        body,
        json!({"address": "b@example.com", "code": "554", "error": "relay denied", "created_at": created_at})
    );
    let (status, body) = api
        .post_json(
            "/bounces",
            json!([{"address": "c@example.com", "code": 551}, {"address": "d@example.com"}]),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"message": "2 addresses have been added to the bounces table"})
        )
    );
    let (_, page) = api.get("/bounces").await;
    assert_eq!(page["items"][1]["code"], "551");
    assert_eq!(
        (
            page["items"][2]["code"].clone(),
            page["items"][2]["error"].clone()
        ),
        (json!("550"), json!(""))
    );
    let entries = api
        .q
        .state
        .store
        .suppressions_of(&Scope::Domain(DOMAIN.into()), "d@example.com")
        .unwrap();
    assert_eq!(
        (entries[0].0, entries[0].1.reason),
        (List::Bounces, Reason::HardBounce)
    );

    assert_eq!(
        api.get("/bounces/nobody@example.com").await,
        (
            StatusCode::NOT_FOUND,
            json!({"message": "Address not found in bounces table"})
        )
    );
    let (status, body) = api.delete("/bounces/b@example.com").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"message": "Bounced address has been removed", "address": "b@example.com"})
        )
    );
    let (status, body) = api.delete("/bounces").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"message": "Bounced addresses for this domain have been removed"})
        )
    );
    assert!(api.addresses("bounces").await.is_empty());

    let (status, _) = api
        .import(
            "bounces",
            "address,code,error,created_at\ne@example.com,552,full,\n",
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    api.wait_for("bounces", 1).await;
    assert_eq!(api.get("/bounces/e@example.com").await.1["code"], "552");
}

#[tokio::test]
async fn complaints_have_only_address_and_date() {
    let api = Api::start().await;
    let (status, body) = api
        .post_form("/complaints", &[("address", "c@example.com")])
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"message": "Address has been added to the complaints table", "address": "c@example.com"})
        )
    );
    let (status, body) = api
        .post_json("/complaints", json!([{"address": "d@example.com", "created_at": "Fri, 21 Oct 2011 11:02:55 +0000"}, {"address": "e@example.com"}]))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"message": "2 complaint addresses have been added to the complaints table"})
        )
    );
    let (_, body) = api.get("/complaints/d@example.com").await;
    assert_eq!(
        body,
        json!({"address": "d@example.com", "created_at": "Fri, 21 Oct 2011 11:02:55 UTC"})
    );
    let entries = api
        .q
        .state
        .store
        .suppressions_of(&Scope::Domain(DOMAIN.into()), "c@example.com")
        .unwrap();
    assert_eq!(
        (entries[0].0, entries[0].1.reason),
        (List::Complaints, Reason::Spam)
    );
    assert_eq!(
        api.get("/complaints/nobody@example.com").await,
        (
            StatusCode::NOT_FOUND,
            json!({"message": "No spam complaints found for this address"})
        )
    );
    let (status, body) = api.delete("/complaints/c@example.com").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"message": "Spam complaint has been removed", "address": "c@example.com"})
        )
    );
    let (status, body) = api.delete("/complaints").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"message": "Complaint addresses for this domain have been removed"})
        )
    );
    assert!(api.addresses("complaints").await.is_empty());
}
