//! ZB-43: Broker's WebSocket JSON test vectors, byte for byte, both directions.

use broker_wasm::data::{Address, Port, Protocol, Set, Subnet, Table, Timespan, Timestamp};
use broker_wasm::zeek_json::{self, ServerMessage};
use broker_wasm::{Data, ErrorCode, Event};

fn check(data: Data, text: &str) {
    assert_eq!(
        zeek_json::encode_value(&data).unwrap(),
        text,
        "encoding {data:?}"
    );
    assert_eq!(
        zeek_json::decode_value(text.as_bytes()).unwrap(),
        data,
        "decoding {text}"
    );
}

#[test]
fn zb43_1_handshake_and_ack() {
    assert_eq!(zeek_json::handshake(&["/test"]), r#"["/test"]"#);
    assert_eq!(
        zeek_json::decode_handshake(br#"["/test"]"#).unwrap(),
        ["/test"]
    );
    let ack = zeek_json::ack("925c9110-5b87-57d9-9d80-b65568e87a44", "2.7.0");
    assert_eq!(
        ack,
        r#"{"type":"ack","endpoint":"925c9110-5b87-57d9-9d80-b65568e87a44","version":"2.7.0"}"#
    );
    assert_eq!(
        zeek_json::decode_server_message(ack.as_bytes()).unwrap(),
        ServerMessage::Ack {
            endpoint: "925c9110-5b87-57d9-9d80-b65568e87a44".into(),
            version: "2.7.0".into()
        }
    );
}

#[test]
fn zb43_2_scalars() {
    let ts = |s: i64| Data::Timestamp(Timestamp(s * 1_000_000_000));
    check(Data::None, r#"{"@data-type":"none","data":{}}"#);
    check(
        Data::Boolean(true),
        r#"{"@data-type":"boolean","data":true}"#,
    );
    check(
        Data::Count(u64::MAX),
        r#"{"@data-type":"count","data":18446744073709551615}"#,
    );
    check(
        Data::Integer(i64::MIN),
        r#"{"@data-type":"integer","data":-9223372036854775808}"#,
    );
    check(Data::Real(-7.5), r#"{"@data-type":"real","data":-7.5}"#);
    check(
        Data::string("foo\n\"bar"),
        r#"{"@data-type":"string","data":"foo\n\"bar"}"#,
    );
    check(
        Data::enum_value("foo"),
        r#"{"@data-type":"enum-value","data":"foo"}"#,
    );
    check(
        Data::Address("192.128.4.4".parse().unwrap()),
        r#"{"@data-type":"address","data":"192.128.4.4"}"#,
    );
    check(
        Data::Address("2001:db8::".parse().unwrap()),
        r#"{"@data-type":"address","data":"2001:db8::"}"#,
    );
    check(
        Data::Subnet(Subnet::new("192.128.4.0".parse::<Address>().unwrap(), 24).unwrap()),
        r#"{"@data-type":"subnet","data":"192.128.4.0/24"}"#,
    );
    check(
        Data::Port(Port::new(9000, Protocol::Udp)),
        r#"{"@data-type":"port","data":"9000/udp"}"#,
    );
    check(
        Data::Timespan(Timespan(0)),
        r#"{"@data-type":"timespan","data":"0s"}"#,
    );
    check(
        Data::Timespan(Timespan(999)),
        r#"{"@data-type":"timespan","data":"999ns"}"#,
    );
    check(
        Data::Timespan(Timespan(1_000)),
        r#"{"@data-type":"timespan","data":"1us"}"#,
    );
    check(
        Data::Timespan(Timespan(1_500_000_000)),
        r#"{"@data-type":"timespan","data":"1500ms"}"#,
    );
    check(
        Data::Timespan(Timespan::from_secs(1)),
        r#"{"@data-type":"timespan","data":"1s"}"#,
    );
    check(
        ts(1_404_901_004),
        r#"{"@data-type":"timestamp","data":"2014-07-09T10:16:44.000"}"#,
    );
    check(
        ts(1_649_574_000),
        r#"{"@data-type":"timestamp","data":"2022-04-10T07:00:00.000"}"#,
    );
    // Control characters are escaped as \u00XX (valid JSON, unlike Broker >= 2.8's \v).
    check(
        Data::string("\u{b}\u{1}"),
        r#"{"@data-type":"string","data":"\u000b\u0001"}"#,
    );
}

#[test]
fn zb43_3_containers() {
    let set: Set = [Data::string("foo"), Data::string("bar")]
        .into_iter()
        .collect();
    check(
        Data::Set(set),
        r#"{"@data-type":"set","data":[{"@data-type":"string","data":"bar"},{"@data-type":"string","data":"foo"}]}"#,
    );
    let table: Table = [(Data::string("first-name"), Data::string("John"))]
        .into_iter()
        .collect();
    check(
        Data::Table(table),
        r#"{"@data-type":"table","data":[{"key":{"@data-type":"string","data":"first-name"},"value":{"@data-type":"string","data":"John"}}]}"#,
    );
    check(Data::Vector(vec![]), r#"{"@data-type":"vector","data":[]}"#);
}

#[test]
fn zb43_4_vector_of_every_type_round_trips() {
    let every: Vec<Data> = vec![
        Data::None,
        Data::Boolean(false),
        Data::Count(42),
        Data::Integer(-42),
        Data::Real(1.25),
        Data::string("text"),
        Data::Address("10.0.0.1".parse().unwrap()),
        Data::Subnet("fe80::/10".parse().unwrap()),
        Data::Port("22/tcp".parse().unwrap()),
        Data::Timestamp(Timestamp(1_700_000_000_123_000_000)),
        Data::Timespan(Timespan(-5)),
        Data::enum_value("Log::WRITER_ASCII"),
        Data::Set([Data::Count(1), Data::Count(2)].into_iter().collect()),
        Data::Table(
            [(Data::Count(1), Data::string("one"))]
                .into_iter()
                .collect(),
        ),
        Data::Vector(vec![Data::Vector(vec![])]),
    ];
    let v = Data::Vector(every);
    let msg = zeek_json::data_message("/test", &v).unwrap();
    let back = zeek_json::decode_data_message(msg.as_bytes(), 1).unwrap();
    assert_eq!(back.topic, "/test");
    assert_eq!(back.data, v);
    assert_eq!(zeek_json::data_message("/test", &back.data).unwrap(), msg);
}

#[test]
fn zb43_5_zeek_event() {
    let e = Event::new("event_1", vec![Data::Integer(42), Data::string("test")]);
    let msg = zeek_json::data_message("/foo/bar", &e.to_data()).unwrap();
    assert_eq!(
        msg,
        r#"{"type":"data-message","topic":"/foo/bar","@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1},{"@data-type":"vector","data":[{"@data-type":"string","data":"event_1"},{"@data-type":"vector","data":[{"@data-type":"integer","data":42},{"@data-type":"string","data":"test"}]}]}]}"#
    );
    let back = zeek_json::decode_data_message(msg.as_bytes(), 1).unwrap();
    assert_eq!(Event::from_data(&back.data).unwrap(), e);

    let ts = Timestamp(1_681_827_194 * 1_000_000_000);
    let with_meta = e.with_network_timestamp(ts);
    let msg = zeek_json::data_message("/foo/bar", &with_meta.to_data()).unwrap();
    assert!(msg.ends_with(
        r#"{"@data-type":"vector","data":[{"@data-type":"vector","data":[{"@data-type":"count","data":1},{"@data-type":"timestamp","data":"2023-04-18T14:13:14.000"}]}]}]}]}"#
    ), "{msg}");
    let back = zeek_json::decode_data_message(msg.as_bytes(), 1).unwrap();
    assert_eq!(
        Event::from_data(&back.data).unwrap().network_timestamp(),
        Some(ts)
    );
}

#[test]
fn zb43_6_errors() {
    let e = zeek_json::decode_data_message(b"How is it going?", 1).unwrap_err();
    assert_eq!(e.code, ErrorCode::DeserializationFailed);
    assert!(e.context.starts_with("input #1 contained malformed JSON"));
    let e = zeek_json::decode_data_message(
        br#"{"topic":"/test","@data-type":"phone","data":"555-0123"}"#,
        1,
    )
    .unwrap_err();
    assert_eq!(e.code, ErrorCode::DeserializationFailed);
    assert!(e.context.starts_with("input #1 contained invalid data"));
    assert_eq!(
        zeek_json::error(e.code, "input #1 contained invalid data"),
        r#"{"type":"error","code":"deserialization_failed","context":"input #1 contained invalid data"}"#
    );
}

#[test]
fn zb43_7_rejections() {
    for text in [
        r#"{"@data-type":"count","data":-1}"#,
        r#"{"@data-type":"count","data":1.0}"#,
        r#"{"@data-type":"integer","data":9223372036854775808}"#,
        r#"{"@data-type":"real","data":"1.5"}"#,
        r#"{"@data-type":"set","data":[{"@data-type":"count","data":1},{"@data-type":"count","data":1}]}"#,
        r#"{"@data-type":"port","data":"80/xyz"}"#,
    ] {
        assert!(
            zeek_json::decode_value(text.as_bytes()).is_err(),
            "{text} must be rejected"
        );
        // Inside a data message the same value gives the "invalid data" error.
        let msg = format!(r#"{{"type":"data-message","topic":"/t",{}"#, &text[1..]);
        let e = zeek_json::decode_data_message(msg.as_bytes(), 7).unwrap_err();
        assert!(
            e.context.starts_with("input #7 contained invalid data"),
            "{}",
            e.context
        );
    }
}
