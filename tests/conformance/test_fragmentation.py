"""RFC 6455 §5.4: fragmentation. Autobahn section 5.

The answers the RFC requires:
- a message sent as a first frame (FIN clear) and continuation frames is delivered whole; the
  echo endpoint sends it back with the opcode of the first frame;
- control frames MAY be injected between fragments and are answered at once (§5.4: "An
  endpoint MUST be capable of handling control frames in the middle of a fragmented message"):
  the Pong comes before the echo of the message it interrupted;
- a continuation frame with no message to continue, or a new Text/Binary frame before the
  final fragment, is a protocol error: Close 1002, then the TCP connection closes;
- control frames themselves are never fragmented (§5.5): Close 1002.
"""

from __future__ import annotations

import pytest

from rawws import BINARY, CLOSE, CONT, PING, PONG, TEXT, close_payload, frame


def fragments(opcode: int, parts: list[bytes]) -> bytes:
    """A message split into `parts`: the first frame carries `opcode`, the rest continue it."""
    out = []
    for i, part in enumerate(parts):
        out.append(frame(opcode if i == 0 else CONT, part, fin=i == len(parts) - 1))
    return b"".join(out)


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
@pytest.mark.parametrize("parts", [
    [b"frag", b"ment1"],
    [b"fra", b"gm", b"ent2"],
    [b"", b"", b"only the middle", b""],
    [b"x"] * 100,
    [b"a" * 1000, b"b" * 70000, b"c"],
], ids=["2-frames", "3-frames", "empty-fragments", "100-one-byte", "mixed-length-forms"])
def test_fragmented_message_is_echoed_whole(ws, opcode, parts):
    ws.send(fragments(opcode, parts))
    ws.expect(opcode, b"".join(parts))


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_fragments_sent_byte_by_byte_are_echoed_whole(ws, opcode):
    ws.send_chopped(fragments(opcode, [b"frag", b"ment", b"ed"]), 1)
    ws.expect(opcode, b"fragmented")


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_ping_between_fragments_is_answered_before_the_echo(ws, opcode):
    ws.send_frame(opcode, b"fragment1", fin=False)
    ws.send_frame(PING, b"in the middle")
    ws.send_frame(CONT, b"fragment2", fin=True)
    ws.expect(PONG, b"in the middle")
    ws.expect(opcode, b"fragment1fragment2")


def test_ping_between_fragments_is_answered_before_the_message_ends(ws):
    # Fail-fast on the control path: the Pong must not wait for the final fragment.
    ws.send_frame(TEXT, b"fragment1", fin=False)
    ws.send_frame(PING, b"now")
    ws.expect(PONG, b"now")
    ws.send_frame(CONT, b"fragment2", fin=True)
    ws.expect(TEXT, b"fragment1fragment2")


def test_pong_between_fragments_is_ignored(ws):
    ws.send_frame(TEXT, b"fragment1", fin=False)
    ws.send_frame(PONG, b"unsolicited")
    ws.send_frame(CONT, b"fragment2", fin=True)
    ws.expect(TEXT, b"fragment1fragment2")


def test_many_pings_between_many_fragments(ws):
    parts = [f"<{i}>".encode() for i in range(20)]
    data = []
    for i, part in enumerate(parts):
        data.append(frame(TEXT if i == 0 else CONT, part, fin=i == len(parts) - 1))
        if i < len(parts) - 1:
            data.append(frame(PING, f"ping {i}".encode()))
    ws.send(b"".join(data))
    for i in range(len(parts) - 1):
        ws.expect(PONG, f"ping {i}".encode())
    ws.expect(TEXT, b"".join(parts))


def test_fragments_and_pings_byte_by_byte(ws):
    data = (frame(TEXT, b"frag", fin=False) + frame(PING, b"p1") + frame(CONT, b"ment", fin=False)
            + frame(PING, b"p2") + frame(CONT, b"ed", fin=True))
    ws.send_chopped(data, 1)
    ws.expect(PONG, b"p1")
    ws.expect(PONG, b"p2")
    ws.expect(TEXT, b"fragmented")


def test_close_between_fragments_closes_normally(ws):
    # A Close is a control frame, allowed between fragments; the unfinished message is dropped.
    ws.send_frame(TEXT, b"fragment1", fin=False)
    ws.send_frame(CLOSE, close_payload(1000))
    ws.expect_close(1000)


@pytest.mark.parametrize("fin", [True, False], ids=["fin", "no-fin"])
def test_continuation_without_a_message_fails_with_1002(ws, fin):
    ws.send_frame(CONT, b"nothing to continue", fin=fin)
    ws.expect_close(1002)


def test_continuation_after_a_finished_message_fails_with_1002(ws):
    ws.text("complete")
    ws.send_frame(CONT, b"too late", fin=True)
    ws.expect(TEXT, b"complete")
    ws.expect_close(1002)


def test_continuation_sequence_without_start_fails_with_1002(ws):
    ws.send(frame(CONT, b"a", fin=False) + frame(CONT, b"b", fin=False) + frame(CONT, b"c", fin=True))
    ws.expect_close(1002)


@pytest.mark.parametrize("first,second", [(TEXT, TEXT), (TEXT, BINARY), (BINARY, TEXT), (BINARY, BINARY)])
@pytest.mark.parametrize("second_fin", [True, False], ids=["fin", "no-fin"])
def test_new_message_inside_a_fragmented_one_fails_with_1002(ws, first, second, second_fin):
    ws.send_frame(first, b"fragment1", fin=False)
    ws.send_frame(second, b"intruder", fin=second_fin)
    ws.expect_close(1002)


def test_new_message_after_a_continuation_fails_with_1002(ws):
    ws.send_frame(TEXT, b"fragment1", fin=False)
    ws.send_frame(CONT, b"fragment2", fin=False)
    ws.send_frame(TEXT, b"intruder", fin=True)
    ws.expect_close(1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_control_frame_split_into_fragments_fails_with_1002(ws, opcode):
    payload = close_payload(1000) if opcode == CLOSE else b"frag"
    ws.send(frame(opcode, payload, fin=False) + frame(CONT, b"ment", fin=True))
    ws.expect_close(1002)


def test_messages_after_a_fragmented_one_are_echoed(ws):
    ws.send(fragments(TEXT, [b"one", b"two"]) + frame(TEXT, b"three") + fragments(BINARY, [b"4", b"5"]))
    ws.expect(TEXT, b"onetwo")
    ws.expect(TEXT, b"three")
    ws.expect(BINARY, b"45")
