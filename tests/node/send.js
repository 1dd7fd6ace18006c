// send.js - nodemailer as an SMTP client, for the listener's integration tests
// (tests/integration/test_listener.py): one message to mailout's SMTP listener,
// the way a Node.js shop would send it.
//
// Usage: node send.js CONFIG.json
// CONFIG: {"port", "host", "ca": PEM file or null, "requireTLS": bool, "user", "pass",
//          "envelope": {"from", "to": [...]}, "raw": the RFC 5322 message (sent as is)
//          or "message": {from, to, subject, text, ...} for nodemailer to compose}
// Prints one JSON line: {"ok": true, "response": "250 2.0.0 Ok: queued as 7", "messageId"}
// or {"ok": false, "code", "response", "error"}; exit status 0 either way (the test decides).
"use strict";

const fs = require("fs");
const nodemailer = require("nodemailer");

async function main() {
    const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
    const transport = nodemailer.createTransport({
        host: cfg.host || "127.0.0.1",
        port: cfg.port,
        secure: false,
        requireTLS: !!cfg.requireTLS,
        ignoreTLS: !cfg.ca,
        tls: cfg.ca ? { ca: fs.readFileSync(cfg.ca), servername: "localhost" } : undefined,
        auth: cfg.user ? { user: cfg.user, pass: cfg.pass } : undefined,
        name: "node.client.test",
        connectionTimeout: 10000,
        greetingTimeout: 10000,
        socketTimeout: 20000,
    });
    const mail = cfg.raw !== undefined
        ? { envelope: cfg.envelope, raw: Buffer.from(cfg.raw, "utf8") }
        : Object.assign({}, cfg.message, cfg.envelope ? { envelope: cfg.envelope } : {});
    try {
        const info = await transport.sendMail(mail);
        console.log(JSON.stringify({ ok: true, response: info.response, messageId: info.messageId }));
    } catch (e) {
        console.log(JSON.stringify({ ok: false, code: e.responseCode || null,
                                     response: e.response || null, error: String(e.message) }));
    }
    transport.close();
}

main();
