#!/usr/bin/env python3
"""mkseeds.py - writes the seed corpora in fuzz/corpus/<target>/.

Seeds are the real Exotel captures (research/exotel.md section 1.3), the
shapes the unit tests use, and hand-made edge cases. Run it again after
changing it; it never deletes files (crash regressions live beside the
seeds as crash-*). Needs opusenc (opus-tools) for the Ogg seeds.
"""
import base64, io, json, math, os, struct, subprocess, sys, tempfile, wave

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tone(rate, ms, hz=440):
    n = rate * ms // 1000
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate)))
                    for i in range(n))


# ---- Exotel messages -------------------------------------------------------
R1 = """{
  "event": "start",
  "stream_sid": "95be037f0ff02b427c3a4a59ae72198c",
  "sequence_number": "1",
  "start": {
    "stream_sid": "95be037f0ff02b427c3a4a59ae72198c",
    "call_sid": "75b90b4b77ce9e6fe9a60a26f03d198c",
    "account_sid": "ezora2",
    "from": "+14129162450",
    "to": "08045680571",
    "custom_parameters": { "serviceHost": "customer-support.acme-corp" },
    "media_format": { "encoding": "base64", "sample_rate": "8000", "bit_rate": "128kbps" }
  }
}"""
R2 = ('{"event": "start", "stream_sid": "3357459ca698d8c765bac10b0ec418bl", "sequence_number": "1", '
      '"start": {"stream_sid": "3357459ca698d8c765bac10b0ec418bl", "call_sid": "b0c8aea60aceb0007fc5a1bb75c218bl", '
      '"account_sid": "kritibudh1", "from": "09992750105", "to": "04446972319", '
      '"media_format": {"encoding": "base64", "sample_rate": "8000", "bit_rate": "128kbps"}}}')
R3 = ('{"event":"start","stream_sid":"a96749544f73ee386db308b7c6811a4f","sequence_number":"1",'
      '"start":{"stream_sid":"a96749544f73ee386db308b7c6811a4f","call_sid":"d91ee51111768cacafc4f2b158b11a4f",'
      '"account_sid":"convixxai1","from":"07900002299","to":"08037091588",'
      '"media_format":{"encoding":"base64","sample_rate":"8000","bit_rate":"128kbps"}}}')
SID = "a96749544f73ee386db308b7c6811a4f"
pcm20 = tone(8000, 20)
exotel = {
    "start-r1": R1, "start-r2": R2, "start-r3": R3,
    "start-custom-token": ('{"event":"start","sequence_number":1,"stream_sid":"S1","start":{"call_sid":"C1",'
                           '"stream_sid":"S1","from":"1","to":"2","custom_parameters":{"token":"t0k","persona":"sales",'
                           '"voice/0000":""},"leg_sid":"L1","media_format":{"encoding":"base64","sample_rate":16000}}}'),
    "connected": '{"event": "connected"}',
    "media-20ms": json.dumps({"event": "media", "sequence_number": "3", "stream_sid": SID,
                              "media": {"chunk": "2", "timestamp": "40",
                                        "payload": base64.b64encode(pcm20).decode()}}),
    "media-numbers": json.dumps({"event": "media", "sequence_number": 4, "stream_sid": SID,
                                 "media": {"chunk": 3, "timestamp": 60, "payload": "AAABAA=="}}),
    "media-odd": '{"event":"media","stream_sid":"S","media":{"payload":"AAA="}}',
    "media-badb64": '{"event":"media","stream_sid":"S","media":{"payload":"A==="}}',
    "dtmf": '{"event":"dtmf","sequence_number":"5","stream_sid":"S","dtmf":{"duration":"200","digit":"5"}}',
    "mark": '{"event":"mark","sequence_number":15,"stream_sid":"S","mark":{"name":"mark_1 \\"q\\" \\u0001"}}',
    "stop": '{"event":"stop","sequence_number":10,"stream_sid":"S","stop":{"call_sid":"C","account_sid":"A","reason":"callended"}}',
    "clear": '{"event":"clear","stream_sid":"S"}',
    "unknown": '{"event":"future","stream_sid":"S","x":[1,2,{"y":null}]}',
    "not-object": '[1,2,3]',
    "trailing": '{"event":"connected"} x',
    "binary": b"\x00\xff\xfe{\"event\"",
}
for k, v in exotel.items():
    put("exotel", k, v)

# ---- base64 ----------------------------------------------------------------
for k, v in {"empty": b"", "pad1": b"QQ==", "pad2": b"QUI=", "nopad": b"QUJD",
             "pcm": base64.b64encode(pcm20), "bad-char": b"QU*D", "bad-pad": b"Q===",
             "noncanon": b"QR==", "space": b"QU JD", "binary": bytes(range(256))}.items():
    put("base64", k, v)

# ---- auth (header \n query token) ------------------------------------------
for k, v in {"basic-ok": "Basic " + base64.b64encode(b"alice:s3cret").decode(),
             "basic-colon": "basic   " + base64.b64encode(b"bob:pa:ss").decode() + "  ",
             "basic-bad": "Basic !!!!", "bearer": "Bearer tok1", "bearer-space": "  bearer\ttok2 \t",
             "query": "\ntok2", "both-bad": "Digest x\nnope", "empty": ""}.items():
    put("auth", k, v)

# ---- PersonaPlex frames (byte 0 bit 0: binary frame) -----------------------
for k, v in {"handshake": b"\x01\x00", "audio": b"\x01\x01OggS\x00\x02", "text": b"\x01\x02hello",
             "text-utf8": b"\x01\x02" + "नमस्ते".encode(), "text-bad": b"\x01\x02\xed\xa0\x80",
             "overlong": b"\x01\x02\xc0\xaf", "unknown": b"\x01\x07x", "empty": b"\x01",
             "ws-text": b"\x00hello", "audio-empty": b"\x01\x01"}.items():
    put("ppframe", k, v)


# ---- a WebSocket server's bytes to exoplex-call (byte 0 bit 0: a 101 first)
def wsf(b0, payload):
    n = len(payload)
    if n < 126:
        hdr = bytes([b0, n])
    elif n < 65536:
        hdr = bytes([b0, 126]) + struct.pack(">H", n)
    else:
        hdr = bytes([b0, 127]) + struct.pack(">Q", n)
    return hdr + payload


media = json.dumps({"event": "media", "stream_sid": "S1",
                    "media": {"payload": base64.b64encode(tone(8000, 100)).decode()}}).encode()
for k, v in {"messages": b"\x01" + wsf(0x81, media) + wsf(0x81, b'{"event":"mark"}') + wsf(0x88, b"\x03\xe8bye"),
             "fragments-ping": b"\x03" + wsf(0x01, b"ab") + wsf(0x89, b"p") + wsf(0x80, b"cd") + wsf(0x8a, b""),
             "too-large": b"\x05" + wsf(0x82, bytes(400)) + wsf(0x81, b"ok"),
             "close-1013": b"\x07" + wsf(0x88, b"\x03\xf5try later"),
             "masked": b"\x01" + bytes([0x81, 0x81, 1, 2, 3, 4, 5]),
             "refused": b"\x00HTTP/1.1 401 Unauthorized\r\n\r\n" + wsf(0x81, b"x"),
             "bad-accept": b"\x00HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Accept: nope\r\n\r\n",
             "empty": b"\x01"}.items():
    put("wsc", k, v)


# ---- Ogg Opus (opusenc) ----------------------------------------------------
def opus_file(ms):
    with tempfile.TemporaryDirectory() as t:
        w = os.path.join(t, "a.wav")
        with wave.open(w, "wb") as f:
            f.setnchannels(1)
            f.setsampwidth(2)
            f.setframerate(24000)
            f.writeframes(tone(24000, ms, 600))
        o = os.path.join(t, "a.opus")
        subprocess.run(["opusenc", "--quiet", "--bitrate", "16", "--serial", "42",
                        "--framesize", "20", w, o], check=True)
        return open(o, "rb").read()


ogg = opus_file(300)
ogg2 = opus_file(100)
# Raw mode (byte 0 odd): the stream as PersonaPlex sends it; a chained
# stream; a page cut short; garbage before a page.
put("oggdemux", "raw-stream", b"\x01" + ogg)
put("oggdemux", "raw-chained", b"\x01" + ogg2 + ogg2.replace(b"\x2a\x00\x00\x00", b"\x2b\x00\x00\x00", 0))
put("oggdemux", "raw-cut", b"\x01" + ogg[: len(ogg) // 2])
put("oggdemux", "raw-garbage", b"\x01junk OggS junk" + ogg2)
# Built mode (byte 0 even): page descriptions (fuzz/oggpage.h).
put("oggdemux", "built-bos", bytes([0, 2, 1, 0, 19]) + b"OpusHead\x01\x01\x38\x01\xc0\x5d\x00\x00\x00\x00\x00"
    + bytes([0, 1, 0, 8]) + b"OpusTags" + bytes([0, 2, 1, 255, 10]) + bytes(265))
put("oggdemux", "built-continued", bytes([0, 0, 1, 1, 255]) + bytes(255) + bytes([1, 1, 1, 3]) + b"abc")
for k in ("raw-stream", "raw-chained", "built-bos"):
    src = open(os.path.join(HERE, "corpus", "oggdemux", k), "rb").read()
    for rate, b0 in (("8k", 0), ("16k", 1), ("24k-up", 0x82)):
        put("tcall", f"{k}-{rate}", bytes([b0]) + src)


# ---- STT messages ----------------------------------------------------------
stt = {
    "session-started": {"message_type": "session_started", "session_id": "abc",
                        "config": {"sample_rate": 8000, "audio_format": "pcm_8000",
                                   "language_code": "en", "model_id": "scribe_v2_realtime"}},
    "partial": {"message_type": "partial_transcript", "text": "hello the"},
    "committed": {"message_type": "committed_transcript", "text": "Hello there."},
    "committed-ts": {"message_type": "committed_transcript_with_timestamps", "text": "Hi.",
                     "language_code": "en", "words": [{"text": "Hi.", "start": 0.1, "end": 0.4,
                                                       "type": "word", "logprob": -0.1}, 7, None]},
    "final": {"message_type": "final_transcript", "text": None},
    "entities": {"message_type": "committed_transcript_entities", "entities": [{"text": "x"}]},
    "auth-error": {"message_type": "auth_error", "error": "invalid api key"},
    "quota": {"message_type": "quota_exceeded", "message": "over"},
    "throttled": {"message_type": "commit_throttled", "error": "slow down"},
    "unknown-error": {"message_type": "brand_new", "error": "x"},
    "unknown": {"message_type": "brand_new"},
}
for k, v in stt.items():
    put("sttmsg", k, json.dumps(v))
put("sttmsg", "not-object", "\"text\"")
put("sttmsg", "no-type", '{"text":"x"}')
put("sttmsg", "utf8-tail", "we said नमस्ते and then \x01 \xff more words   ".encode("utf-8", "surrogateescape"))

# ---- personas file ---------------------------------------------------------
put("persona", "example", """; personas for the test
# another comment
[sales]
voice = NATM1.pt
text = You sell solar panels for Acme; the caller is {from}
    and rang {to}.
\tTheir order is {order_id}. {{literal}} {token}
numbers = +91 80 4000 1234, 0804000-1235

[Support]
voice_prompt = NATF1.pt
text_prompt = You help with support.
number = 08045680571

[default]
text = Default persona.
""")
put("persona", "dup-key", "[a]\ntext = x\ntext = y\n")
put("persona", "no-text", "[a]\nvoice = V.pt\n")
put("persona", "same-number", "[a]\ntext=x\nnumbers=0804000\n[b]\ntext=y\nnumbers=0804000\n")
put("persona", "unknown-key", "[a]\ntext=x\ncolour=blue\n")
put("persona", "bad-line", "[a]\nthis is not ini\n")
put("persona", "empty", "")
put("persona", "long-line", "[a]\ntext = " + "x" * 20000 + "\n")

# ---- configuration (argv lines; NAME=value lines are the environment) ------
cfg = {
    "ingress": "--listen\n127.0.0.1:8080\n--admin=127.0.0.1:9100\nEXOPLEX_AUTH_BASIC=u:SECRETMARK1, v:w\n"
               "EXOPLEX_AUTH_TOKENS=SECRETMARK2,t2\n--playback-chunk-ms=100\n--log-format\njson\n",
    "egress": "EXOPLEX_PERSONAPLEX_URLS=ws://127.0.0.1:8998,wss://[::1]:8999/x?y=1,http://bad\n"
              "--personaplex-insecure\n--webhook-url=https://h.example/hook\n"
              "EXOPLEX_WEBHOOK_HEADERS=Authorization: Bearer SECRETMARK3;;X-A: b\n",
    "bad-int": "--max-calls=0x10\n",
    "bad-auth": "EXOPLEX_AUTH_BASIC=SECRETMARKnocolon\n",
    "bad-addr": "--listen=nohostport\n",
    "bus": "EXOPLEX_BUS_DIR=/tmp/x\n--bus-transcoder=tcp://127.0.0.1:7000\nEXOPLEX_BUS_TAP=on\n",
    "unknown": "--nope\nstray\n",
    "enum": "--mode=listen\n--log-level=debug\n--outbox-sync=full\n",
}
for k, v in cfg.items():
    put("config", k, v)


# ---- bus Envelopes (hand-encoded protobuf) ---------------------------------
def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fld(n, v):
    if isinstance(v, int):
        return varint(n << 3) + varint(v)
    if isinstance(v, str):
        v = v.encode()
    return varint(n << 3 | 2) + varint(len(v)) + v


def frame(call, seq, body_field, body):
    return fld(1, call) + fld(2, seq) + fld(3, 1700000000000000) + fld(body_field, body)


def env(sender, *frames, version=1):
    return fld(1, version) + fld(2, sender) + fld(3, 1700000000000000) + b"".join(fld(4, f) for f in frames)


start = (fld(1, "S1") + fld(2, "C1") + fld(3, "acct") + fld(4, "+91") + fld(5, "080")
         + fld(6, fld(1, "persona") + fld(2, "sales")) + fld(7, 8000) + fld(8, "base64") + fld(12, 1)
         + fld(15, fld(1, "leg_sid") + fld(2, "L")))
audio = fld(1, 8000) + fld(2, pcm20)
sess = fld(1, 1) + fld(2, "ws://127.0.0.1:8998/api/chat")
put("bus", "call-start-audio", env("ingress", frame("S1", 1, 16, start), frame("S1", 2, 17, audio)))
put("bus", "session-downlink", env("egress", frame("S1", 1, 16, start), frame("S1", 3, 21, sess),
                                   frame("S1", 5, 19, fld(1, 1) + fld(2, ogg[:600]))))
put("bus", "stop", env("ingress", frame("S1", 1, 16, start), frame("S1", 2, 25, fld(1, "callended"))))
put("bus", "unknown-call", env("egress", frame("X", 1, 19, fld(1, 2) + fld(2, b"OggS"))))
put("bus", "rate-odd", env("ingress", frame("S2", 1, 16, fld(1, "S2") + fld(7, 12345)),
                           frame("S2", 2, 17, fld(1, 0) + fld(2, b"\x01"))))
put("bus", "other-kinds", env("egress", frame("S1", 1, 22, fld(1, 1) + fld(3, "gone")),
                              frame("S1", 2, 23, fld(1, "5") + fld(2, 100)), frame("S1", 3, 28, b""),
                              frame("S1", 4, 31, fld(1, 1) + fld(2, 2)), frame("", 5, 26, fld(1, "x"))))
put("bus", "version2", env("future", version=2))
put("bus", "empty", b"")
put("bus", "garbage", b"\xff\xff\xff\xff not protobuf")
print("seeds written under", os.path.join(HERE, "corpus"))
