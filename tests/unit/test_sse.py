from proxy.sse import DONE, SSEParser, encode_data, encode_named, iter_events
from tests.kit import sample_bytes


def test_parses_openai_sample_to_done():
    events = list(iter_events(sample_bytes("openai/chat.stream.text.sse")))
    assert events[-1].data == b"[DONE]"
    assert all(e.name is None for e in events)


def test_named_events_match_anthropic_types():
    events = list(iter_events(sample_bytes("anthropic/messages.stream.tool_use.sse")))
    assert events[0].name == "message_start"
    assert events[-1].name == "message_stop"


def test_crlf_and_cr_and_comments_and_split_chunks():
    raw = b': keepalive\r\nevent: ping\r\ndata: {"a":1}\r\n\r\ndata: x\rdata: y\r\r'
    parser = SSEParser()
    events = []
    for i in range(len(raw)):  # one byte at a time: every split point, CRLF split included
        events += parser.feed(raw[i : i + 1])
    assert [(e.name, e.data) for e in events] == [("ping", b'{"a":1}'), (None, b"x\ny")]
    assert not parser.pending


def test_gemini_crlf_sample_parses():
    events = list(iter_events(sample_bytes("gemini/streamGenerateContent.sse")))
    assert events and all(e.data.startswith(b"{") for e in events)


def test_unfinished_tail_is_pending_and_flushed_on_close():
    parser = SSEParser()
    assert parser.feed(b'data: {"x":') == []
    assert parser.pending
    assert [e.data for e in parser.close()] == [b'{"x":']


def test_encoders():
    assert encode_data({"a": 1}) == b'data: {"a":1}\n\n'
    assert encode_named("ping", {"type": "ping"}) == b'event: ping\ndata: {"type":"ping"}\n\n'
    assert DONE == b"data: [DONE]\n\n"
