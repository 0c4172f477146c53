// npm smpp (node-smpp) as a carrier's SMSC that redelivers: citizens'
// messages are queued here and delivered as deliver_sm to the bound
// gateways bound to it (in turn, when several are: a redundant pair binds
// twice); one whose deliver_sm_resp did not come before its connection
// ended is delivered again first, on whichever session is bound, and one
// refused with an error status is delivered again a little later, as
// carriers do. Driven by tests/smpp/carrier_crash.rs and
// tests/smpp/cluster_failover.rs.
//
// usage: node carrier.js SYSTEM_ID PASSWORD [SUBMIT_DELAY_MS]
// SUBMIT_DELAY_MS: each submit_sm is taken at once ("part" event) and
// answered that much later, as a busy SMSC does (default 0).
// Listens on 127.0.0.1, a free port: {"event":"listening","port","smpp_version"}.
// Accepts bind_transceiver with these credentials -> {"event":"bound","session"}.
// Commands:
//   {"cmd":"mo","id":..,"from":..,"to":..,"text":..} -> queued, delivered in
//        order while a session is bound, at most WINDOW per session awaiting
//        their response.
// Events: "deliver" {id, attempt, session} when a deliver_sm is written;
// "acked" {id} on deliver_sm_resp ESME_ROK; "refused" {id, status} on an
// error status; "redeliver" {id, session} when the connection ended before
// the response; "part" for every submit_sm (answered with submit_sm_resp,
// message id "c-N"), with the concatenation reference and part number;
// "connected", "disconnected", "enquire_link_received", "error".
'use strict';

const { smpp, smppVersion, emit, onCommands, describe } = require('./common');

const [systemId, password, delay] = process.argv.slice(2);
const submitDelay = Number(delay || 0);
const WINDOW = 10;
const queue = [];           // messages to deliver, oldest first
const pending = new Map();  // id -> { message, session id } awaiting deliver_sm_resp
const attempts = new Map(); // id -> deliver_sm written so far
let sessions = 0;
let messageIds = 0;
const bound = new Map();    // session id -> session, in bind order
let turn = 0;              // the next session to deliver to, round robin

function concatOf(pdu) {
  const sm = pdu.short_message || {};
  for (const ie of sm.udh || []) {
    if (ie[0] === 0x00 && ie[1] === 3) return { ref: ie[2], total: ie[3], seq: ie[4] };
    if (ie[0] === 0x08 && ie[1] === 4) return { ref: ie.readUInt16BE(2), total: ie[4], seq: ie[5] };
  }
  return null;
}

// Messages awaiting a response on one session.
function inFlight(id) {
  let count = 0;
  for (const entry of pending.values()) if (entry.session === id) count += 1;
  return count;
}

// The next bound session with room in its window, round robin.
function nextSession() {
  const ids = [...bound.keys()];
  for (let i = 0; i < ids.length; i += 1) {
    const id = ids[(turn + i) % ids.length];
    if (inFlight(id) < WINDOW) {
      turn = (turn + i + 1) % ids.length;
      return { id, session: bound.get(id) };
    }
  }
  return null;
}

function pump() {
  while (queue.length > 0) {
    const next = nextSession();
    if (!next) return;
    const message = queue.shift();
    const { id, session } = next;
    const attempt = (attempts.get(message.id) || 0) + 1;
    attempts.set(message.id, attempt);
    pending.set(message.id, { message, session: id });
    emit({ event: 'deliver', id: message.id, attempt, session: id });
    const sent = session.deliver_sm({
      source_addr_ton: 1,
      source_addr_npi: 1,
      source_addr: message.from,
      destination_addr: message.to,
      short_message: message.text,
    }, (resp) => {
      const entry = pending.get(message.id);
      if (!entry || entry.session !== id) return;
      pending.delete(message.id);
      if (resp.command_status === 0) {
        emit({ event: 'acked', id: message.id, session: id });
      } else {
        emit({ event: 'refused', id: message.id, status: resp.command_status, session: id });
        setTimeout(() => { queue.push(message); pump(); }, 500);
      }
      pump();
    });
    if (!sent) {
      // The socket is no longer writable: delivered again on the next bind.
      pending.delete(message.id);
      queue.unshift(message);
      bound.delete(id);
    }
  }
}

const server = smpp.createServer((session) => {
  const id = ++sessions;
  session.socket.setNoDelay(true);
  emit({ event: 'connected', session: id });

  session.on('bind_transceiver', (pdu) => {
    const ok = pdu.system_id === systemId && pdu.password === password;
    session.send(pdu.response(ok ? { system_id: 'NodeCarrier' } : { command_status: smpp.ESME_RINVPASWD }));
    emit({ event: ok ? 'bound' : 'bind_refused', session: id });
    if (ok) {
      bound.set(id, session);
      pump();
    }
  });

  session.on('submit_sm', (pdu) => {
    const messageId = `c-${++messageIds}`;
    // Taken (on its way to the handset) now; answered after the delay.
    emit({ event: 'part', ...describe(pdu), concat: concatOf(pdu), message_id: messageId, session: id });
    setTimeout(() => session.send(pdu.response({ message_id: messageId })), submitDelay);
  });

  session.on('enquire_link', (pdu) => {
    session.send(pdu.response());
    emit({ event: 'enquire_link_received', session: id });
  });

  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    session.close();
  });

  session.on('error', (e) => emit({ event: 'error', session: id, error: String(e && e.message || e) }));
  session.on('close', () => {
    bound.delete(id);
    // Every deliver_sm of this connection still awaiting its response goes
    // again, first, on a bound session.
    const lost = [...pending.values()].filter((entry) => entry.session === id);
    for (const entry of lost.reverse()) {
      pending.delete(entry.message.id);
      queue.unshift(entry.message);
      emit({ event: 'redeliver', id: entry.message.id, session: id });
    }
    emit({ event: 'disconnected', session: id });
    pump();
  });
});

server.listen(0, '127.0.0.1', () => {
  emit({ event: 'listening', port: server.address().port, smpp_version: smppVersion });
});

onCommands((c) => {
  switch (c.cmd) {
    case 'mo':
      queue.push({ id: c.id, from: c.from, to: c.to, text: c.text });
      pump();
      break;
    default:
      emit({ event: 'bad_command', command: c });
  }
});
