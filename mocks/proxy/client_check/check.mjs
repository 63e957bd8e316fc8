// Drives the agentlab chaos proxy with the official Toxiproxy Node client (toxiproxy-node-client),
// unchanged: only the API URL differs. Usage: node check.mjs http://127.0.0.1:PORT
// Exit 0 when every check passes; prints "N passed, M failed".
import net from "node:net";
import { Toxiproxy } from "toxiproxy-node-client";

const api = process.argv[2];
if (!api) {
  console.error("usage: node check.mjs API_URL");
  process.exit(2);
}

let passed = 0;
let failed = 0;
function check(name, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name} ${detail}`);
  }
}

function echoServer() {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => socket.pipe(socket));
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

function portOf(listen) {
  return Number(listen.slice(listen.lastIndexOf(":") + 1));
}

// Sends `text` through 127.0.0.1:port and resolves with {ms, data} or {error}.
function roundTrip(port, text, timeoutMs = 3000) {
  return new Promise((resolve) => {
    const start = Date.now();
    let data = "";
    const socket = net.connect(port, "127.0.0.1", () => socket.write(text));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ error: "timeout" });
    }, timeoutMs);
    socket.on("data", (chunk) => {
      data += chunk.toString();
      if (data.length >= text.length) {
        clearTimeout(timer);
        socket.end();
        resolve({ ms: Date.now() - start, data });
      }
    });
    socket.on("error", (e) => {
      clearTimeout(timer);
      resolve({ error: e.code || String(e) });
    });
  });
}

const echo = await echoServer();
const upstream = `127.0.0.1:${echo.address().port}`;
const toxiproxy = new Toxiproxy(api);

try {
  const version = await toxiproxy.getVersion();
  check("getVersion", version.includes("2.12.0"), version);

  const proxy = await toxiproxy.createProxy({ name: "node_check", listen: "127.0.0.1:0", upstream });
  const port = portOf(proxy.listen);
  check("createProxy reports the bound port", port > 0 && proxy.enabled === true, proxy.listen);
  const plain = await roundTrip(port, "hello");
  check("bytes pass through", plain.data === "hello", JSON.stringify(plain));

  const latency = await proxy.addToxic({
    name: "lag", type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 300, jitter: 0 },
  });
  check("addToxic", latency.name === "lag" && latency.attributes.latency === 300, JSON.stringify(latency.attributes));
  const slow = await roundTrip(port, "slow");
  check("latency toxic delays", slow.ms >= 300, JSON.stringify(slow));
  const fetched = await proxy.getToxic("lag");
  check("getToxic", fetched.type === "latency" && fetched.stream === "downstream" && fetched.toxicity === 1);
  const updated = await fetched.update({ attributes: { latency: 50, jitter: 0 }, toxicity: 1 });
  check("Toxic.update", updated.attributes.latency === 50, JSON.stringify(updated.attributes));
  await updated.remove();
  const fast = await roundTrip(port, "fast");
  check("Toxic.remove", fast.ms < 200, JSON.stringify(fast));

  const down = await proxy.update({ enabled: false, listen: proxy.listen, upstream });
  check("update enabled=false", down.enabled === false);
  const refused = await roundTrip(port, "x");
  check("disabled proxy refuses", refused.error === "ECONNREFUSED", JSON.stringify(refused));
  const up = await down.update({ enabled: true, listen: proxy.listen, upstream });
  check("update enabled=true keeps the port", up.enabled === true && portOf(up.listen) === port, up.listen);

  const populated = await toxiproxy.populate([
    { name: "node_a", listen: "127.0.0.1:0", upstream },
    { name: "node_b", listen: "127.0.0.1:0", upstream, enabled: false },
  ]);
  check("populate", populated.node_a?.enabled === true && populated.node_b?.enabled === false);
  const all = await toxiproxy.getAll();
  check("getAll", ["node_check", "node_a", "node_b"].every((n) => n in all), Object.keys(all).join(","));

  await (await toxiproxy.get("node_check")).addToxic({
    name: "cut", type: "timeout", stream: "upstream", toxicity: 1, attributes: { timeout: 0 },
  });
  await toxiproxy.reset();
  const afterReset = await toxiproxy.get("node_b");
  const resetOk = afterReset.enabled === true && (await roundTrip(port, "reset")).data === "reset";
  check("reset enables proxies and removes toxics", resetOk);

  await proxy.remove();
  let gone = false;
  try {
    await toxiproxy.get("node_check");
  } catch (e) {
    gone = /404/.test(String(e.message));
  }
  check("remove, then get fails with 404", gone);
} catch (e) {
  check("unexpected error", false, e && e.stack ? e.stack : String(e));
} finally {
  echo.close();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
