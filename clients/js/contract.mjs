// The supabase-js contract: the official client on Node (>= 20), `ws` as the realtime
// transport, against any stack:
//
//   SUPABASE_URL=… SUPABASE_ANON_KEY=… SUPABASE_SERVICE_ROLE_KEY=… node contract.mjs
//
// Prints `ok <step>` or `FAIL <step>: <reason>` per step and `N passed, M failed`; exits 1
// on any failure. The steps are those of the supabase-py contracts (api/tests/contract/),
// under the same names. README: "Supabase clients: local stack vs Supabase".

import { randomUUID } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";

const HERE = [48.8606, 2.3376]; // the Louvre
const CATEGORIES = ["museum", "park"];
const RADIUS_KM = 5;
const DELIVERY_TIMEOUT_MS = 10_000; // a realtime change must reach its subscriber within this
const SILENCE_MS = 2_000; // and nothing may reach the other user in this long after it did
const PASSWORD = "Contract-pass-1234";
const TEXT = "Planwise contract: a file only its owner reads.\n";

class ContractError extends Error {}

function expect(condition, message) {
  if (!condition) throw new ContractError(message);
}

function show(value) {
  return JSON.stringify(value);
}

// A client call's data; its error (supabase-js returns errors, it does not throw) fails.
function dataOf({ data, error }, what) {
  if (error) throw new ContractError(`${what}: ${errorText(error)}`);
  return data;
}

function errorText(error) {
  const code = error.code ?? error.status ?? error.statusCode ?? "";
  return `${error.name ?? "Error"} ${code}: ${error.message ?? show(error)}`.trim();
}

// A call that must be refused: it returns an error (or throws).
async function refused(call, what) {
  let answer;
  try {
    answer = await call();
  } catch {
    return;
  }
  expect(answer.error, `${what}: not refused: ${show(answer.data)}`);
}

// A write on another user's row: an error (RLS) or no row touched.
async function refusedOrEmpty(call, what) {
  const { data, error } = await call();
  if (error) return;
  expect(Array.isArray(data) && data.length === 0, `${what}: touched ${show(data)}`);
}

function environment() {
  const names = ["SUPABASE_URL", "SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY"];
  const missing = names.filter((name) => !process.env[name]);
  if (missing.length) {
    console.log(`FAIL environment: ${missing.join(", ")} not set`);
    process.exit(2);
  }
  return {
    url: process.env.SUPABASE_URL.replace(/\/+$/, ""),
    anonKey: process.env.SUPABASE_ANON_KEY,
    serviceRoleKey: process.env.SUPABASE_SERVICE_ROLE_KEY,
    emailDomain: process.env.CONTRACT_EMAIL_DOMAIN ?? "example.com",
  };
}

function newClient(env, key) {
  return createClient(env.url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket },
  });
}

class Report {
  constructor(client) {
    this.client = client;
    this.passed = [];
    this.failed = [];
    this.started = performance.now();
  }

  // Runs a step; a step whose prerequisite failed fails without running.
  async run(name, step, needs = []) {
    const missing = needs.filter((need) => !this.passed.includes(need));
    if (missing.length) {
      this.failed.push(name);
      console.log(`FAIL ${name}: not run: needs ${missing.join(", ")}`);
      return;
    }
    try {
      await step();
      this.passed.push(name);
      console.log(`ok ${name}`);
    } catch (error) {
      this.failed.push(name);
      const text = `${error?.name ?? "Error"}: ${error?.message ?? String(error)}`;
      console.log(`FAIL ${name}: ${text.split(/\s+/).join(" ").slice(0, 400)}`);
    }
  }

  note(text) {
    console.log(`-- ${text}`);
  }

  finish() {
    const seconds = (performance.now() - this.started) / 1000;
    this.note(`${this.client}: ${seconds.toFixed(1)} s`);
    console.log(`${this.passed.length} passed, ${this.failed.length} failed`);
    return this.failed.length ? 1 : 0;
  }
}

async function contract(env) {
  const report = new Report("supabase-js");
  const tag = randomUUID().replaceAll("-", "").slice(0, 10);
  const [museum, park] = CATEGORIES.map((category) => `contract-${tag}-${category}`);
  const places = CATEGORIES.map((category, index) => ({
    id: `contract-${tag}-${category}`,
    name: `Contract ${category} ${tag}`,
    lat: HERE[0] + 0.001 * index,
    lng: HERE[1] + 0.001 * index,
    category,
    types: `${category},point_of_interest`,
    rating: 4.5,
    user_ratings_total: 100,
  }));
  const bucket = `contract-${tag}`;
  const service = newClient(env, env.serviceRoleKey);
  const anon = newClient(env, env.anonKey);
  const user = (who) => ({
    who,
    email: `contract-js-${tag}-${who}@${env.emailDomain}`,
    username: `c_js_${tag}_${who}`,
    client: newClient(env, env.anonKey),
    authId: "",
    refreshToken: "",
    userId: null,
    changes: [],
  });
  const first = user("a");
  const second = user("b");
  const users = [first, second];
  const ids = {};
  let path = "";

  async function insertPlaces() {
    const inserted = dataOf(await service.from("place").insert(places).select(), "insert");
    expect(inserted.map((r) => r.id).sort().join() === [museum, park].sort().join(), show(inserted));
  }

  async function anonReadsPlaces() {
    const found = dataOf(await anon.from("place").select("id, name").in("id", [museum, park]), "select");
    expect(found.length === 2, `anon saw ${found.length} of the 2 places`);
  }

  async function createBucket() {
    dataOf(await service.storage.createBucket(bucket, { public: false }), "createBucket");
    const got = dataOf(await service.storage.getBucket(bucket), "getBucket");
    expect(got.id === bucket && !got.public, show(got));
  }

  async function signUp() {
    for (const u of users) {
      const data = { username: u.username, full_name: `Contract ${u.who.toUpperCase()}` };
      const answer = dataOf(
        await u.client.auth.signUp({ email: u.email, password: PASSWORD, options: { data } }),
        `${u.who}: signUp`,
      );
      expect(answer.user?.email === u.email, `${u.who}: user ${show(answer.user)}`);
      expect(answer.session, `${u.who}: no session (email confirmation on?)`);
      u.authId = answer.user.id;
    }
    expect(first.authId !== second.authId, "both users got the same id");
  }

  async function signIn() {
    for (const u of users) {
      const { session } = dataOf(
        await u.client.auth.signInWithPassword({ email: u.email, password: PASSWORD }),
        `${u.who}: signIn`,
      );
      expect(session?.user?.id === u.authId, `${u.who}: signed in as ${session?.user?.id}`);
      const claims = JSON.parse(Buffer.from(session.access_token.split(".")[1], "base64url"));
      expect(claims.sub === u.authId, `${u.who}: sub ${claims.sub}`);
      expect(claims.role === "authenticated", `${u.who}: role ${claims.role}`);
      u.refreshToken = session.refresh_token;
    }
    const bad = newClient(env, env.anonKey);
    const { error } = await bad.auth.signInWithPassword({ email: first.email, password: `${PASSWORD}x` });
    expect(error, "a wrong password signed in");
    expect(error.code === "invalid_credentials", `wrong password: ${errorText(error)}`);
  }

  async function refresh() {
    for (const u of users) {
      const { session } = dataOf(await u.client.auth.refreshSession(), `${u.who}: refresh`);
      expect(session?.refresh_token && session.refresh_token !== u.refreshToken, "refresh token not rotated");
      expect(session.user.id === u.authId, `${u.who}: refreshed as someone else`);
      u.refreshToken = session.refresh_token;
    }
  }

  async function getUser() {
    for (const u of users) {
      const { user: got } = dataOf(await u.client.auth.getUser(), `${u.who}: getUser`);
      expect(got?.email === u.email, `${u.who}: got ${show(got)}`);
    }
  }

  async function updateUser() {
    for (const u of users) {
      const name = `Contract ${u.who.toUpperCase()} renamed`;
      const { user: got } = dataOf(await u.client.auth.updateUser({ data: { full_name: name } }), "updateUser");
      expect(got?.user_metadata?.full_name === name, `${u.who}: got ${show(got)}`);
      const { user: again } = dataOf(await u.client.auth.getUser(), "getUser");
      expect(again?.user_metadata?.full_name === name, `${u.who}: update not kept`);
    }
  }

  async function preferenceInsert() {
    for (const [u, category] of [[first, "museum"], [second, "park"]]) {
      const row = dataOf(await u.client.from("preference").insert({ category, rating: 0.9 }).select(), "insert");
      expect(row.length === 1 && row[0].category === category, show(row));
      expect(Number.isInteger(row[0].user_id), `user_id not filled in: ${show(row[0])}`);
      u.userId = row[0].user_id;
      ids[`preference ${u.who}`] = row[0].id;
    }
    expect(first.userId !== second.userId, "both users own the same user_id");
  }

  async function preferenceSelect() {
    const mine = dataOf(await first.client.from("preference").select("id, category, rating"), "select");
    expect(show(mine.map((r) => r.id)) === show([ids["preference a"]]), `first sees ${show(mine)}`);
    const theirs = dataOf(await second.client.from("preference").select("*").eq("id", ids["preference a"]), "select");
    expect(theirs.length === 0, `second sees the first's row: ${show(theirs)}`);
    const own = dataOf(await second.client.from("preference").select("id"), "select");
    expect(show(own.map((r) => r.id)) === show([ids["preference b"]]), `second sees ${show(own)}`);
  }

  async function ratingOf(table, key) {
    const found = dataOf(await first.client.from(table).select("rating").eq("id", ids[key]), "select");
    expect(found.length === 1, `${key}: ${found.length} rows`);
    return found[0].rating;
  }

  async function preferenceUpdate() {
    const row = dataOf(
      await first.client.from("preference").update({ rating: 0.8 }).eq("id", ids["preference a"]).select(),
      "update",
    );
    expect(row.length === 1 && row[0].rating === 0.8, show(row));
    const changed = dataOf(
      await second.client.from("preference").update({ rating: 0.1 }).eq("id", ids["preference a"]).select(),
      "update",
    );
    expect(changed.length === 0, `second changed ${show(changed)}`);
    expect((await ratingOf("preference", "preference a")) === 0.8, "the first's row changed");
  }

  async function preferenceUpsert() {
    const row = dataOf(
      await first.client
        .from("preference")
        .upsert({ category: "museum", rating: 0.95 }, { onConflict: "user_id,category" })
        .select(),
      "upsert",
    );
    expect(row.length === 1 && row[0].id === ids["preference a"] && row[0].rating === 0.95, show(row));
    const attempt = { id: ids["preference a"], category: "museum", rating: 0 };
    await refusedOrEmpty(() => second.client.from("preference").upsert(attempt).select(), "second's upsert");
    expect((await ratingOf("preference", "preference a")) === 0.95, "the first's row changed");
    const counted = await first.client.from("preference").select("id", { count: "exact" });
    dataOf(counted, "count");
    expect(counted.count === 1, `first has ${counted.count} preferences after the upsert`);
  }

  async function reviewInsert() {
    for (const [u, rating] of [[first, 4], [second, 2]]) {
      const body = { place_id: museum, rating, comment: `by ${u.who}` };
      const row = dataOf(await u.client.from("review").insert(body).select(), "insert");
      expect(row.length === 1 && row[0].user_id === u.userId, show(row));
      ids[`review ${u.who}`] = row[0].id;
    }
  }

  async function reviewSelect() {
    const mine = dataOf(await first.client.from("review").select("id, rating, comment, place(id, name)"), "select");
    expect(mine.length === 1 && mine[0].id === ids["review a"], `first sees ${show(mine)}`);
    expect(show(mine[0].place) === show({ id: museum, name: places[0].name }), show(mine));
    const theirs = dataOf(await second.client.from("review").select("*").eq("id", ids["review a"]), "select");
    expect(theirs.length === 0, `second sees the first's review: ${show(theirs)}`);
  }

  async function reviewUpdate() {
    const row = dataOf(
      await first.client.from("review").update({ rating: 5 }).eq("id", ids["review a"]).select(),
      "update",
    );
    expect(row.length === 1 && row[0].rating === 5, show(row));
    const changed = dataOf(
      await second.client.from("review").update({ rating: 1 }).eq("id", ids["review a"]).select(),
      "update",
    );
    expect(changed.length === 0, `second changed ${show(changed)}`);
    expect((await ratingOf("review", "review a")) === 5, "the first's review changed");
  }

  async function reviewUpsert() {
    const body = { place_id: museum, rating: 3, comment: "upserted" };
    const row = dataOf(await first.client.from("review").upsert(body, { onConflict: "user_id,place_id" }).select(), "upsert");
    expect(row.length === 1 && row[0].id === ids["review a"] && row[0].comment === "upserted", show(row));
    const attempt = { id: ids["review a"], place_id: museum, rating: 1 };
    await refusedOrEmpty(() => second.client.from("review").upsert(attempt).select(), "second's upsert");
    expect((await ratingOf("review", "review a")) === 3, "the first's review changed");
  }

  async function recommend() {
    const args = { lat: HERE[0], lng: HERE[1], radius_km: RADIUS_KM, max_results: 20 };
    for (const [u, want, other] of [[first, museum, park], [second, park, museum]]) {
      const found = dataOf(await u.client.rpc("recommend_places", args), "rpc");
      const got = found.map((r) => r.id);
      expect(got.includes(want) && !got.includes(other), `${u.who} got ${show(got)}`);
      expect(found.every((r) => r.score > 0), `${u.who}: scores ${show(found)}`);
    }
  }

  async function anonRecommend() {
    const args = { lat: HERE[0], lng: HERE[1], radius_km: RADIUS_KM };
    await refusedOrEmpty(() => anon.rpc("recommend_places", args), "anon's rpc");
  }

  async function upload() {
    path = `${first.authId}/note-${tag}.txt`;
    dataOf(await first.client.storage.from(bucket).upload(path, TEXT, { contentType: "text/plain" }), "upload");
  }

  async function download() {
    const blob = dataOf(await first.client.storage.from(bucket).download(path), "download");
    const text = await blob.text();
    expect(text === TEXT, `downloaded ${show(text)}`);
    await refused(() => second.client.storage.from(bucket).download(path), "second's download");
  }

  async function signedUrl() {
    const { signedUrl: url } = dataOf(await first.client.storage.from(bucket).createSignedUrl(path, 60), "sign");
    expect(url, "no signed URL");
    const answer = await fetch(url);
    const text = await answer.text();
    expect(answer.status === 200, `GET signed URL: ${answer.status} ${text}`);
    expect(text === TEXT, `signed URL served ${show(text)}`);
    await refused(() => second.client.storage.from(bucket).createSignedUrl(path, 60), "second's signed URL");
  }

  async function storageRemove() {
    const removed = dataOf(await second.client.storage.from(bucket).remove([path]), "second's remove");
    expect(removed.length === 0, `second removed ${show(removed)}`);
    const blob = dataOf(await first.client.storage.from(bucket).download(path), "download");
    expect((await blob.text()) === TEXT, "the first's file changed");
    const gone = dataOf(await first.client.storage.from(bucket).remove([path]), "remove");
    expect(gone.length === 1, `first removed ${show(gone)}`);
  }

  async function realtime() {
    for (const u of users) {
      const state = await new Promise((resolve) => {
        u.client
          .channel(`contract-${tag}-${u.who}`)
          .on("postgres_changes", { event: "*", schema: "public", table: "preference" }, (payload) => {
            u.changes.push(payload);
          })
          .subscribe((status, error) => {
            // SUBSCRIBED, or the end of trying: CHANNEL_ERROR, TIMED_OUT (after 10 s), CLOSED
            resolve(error ? `${status}: ${error.message}` : status);
          });
      });
      expect(state === "SUBSCRIBED", `${u.who}: subscription ${state}`);
    }
    const written = performance.now();
    const row = dataOf(await first.client.from("preference").insert({ category: "cafe", rating: 0.5 }).select(), "insert");
    ids["preference cafe"] = row[0].id;
    while (!first.changes.some((c) => c.eventType === "INSERT" && c.new?.category === "cafe")) {
      expect(performance.now() - written < DELIVERY_TIMEOUT_MS, `first got no change in ${DELIVERY_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    report.note(`realtime: delivered ${Math.round(performance.now() - written)} ms after insert`);
    await new Promise((resolve) => setTimeout(resolve, SILENCE_MS));
    expect(second.changes.length === 0, `second received the first's change: ${show(second.changes)}`);
    for (const u of users) await u.client.removeAllChannels();
  }

  async function until(condition, what) {
    const started = performance.now();
    while (!condition()) {
      expect(performance.now() - started < DELIVERY_TIMEOUT_MS, `${what} within ${DELIVERY_TIMEOUT_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  async function joined(channel) {
    const state = await new Promise((resolve) => {
      channel.subscribe((status, error) => resolve(error ? `${status}: ${error.message}` : status));
    });
    return state;
  }

  const lobby = `contract-${tag}-lobby`;
  const lobbyChannels = {};
  const heard = { a: [], b: [] };

  // Both users on one public topic. supabase-js sends every broadcast as a binary frame
  // (protocol 2.0.0): JSON payloads and, here too, an ArrayBuffer.
  async function broadcast() {
    for (const u of users) {
      const channel = u.client.channel(lobby, { config: { broadcast: { ack: true }, presence: { key: u.who } } });
      for (const event of ["wave", "blob", "notice"]) {
        channel.on("broadcast", { event }, (message) => heard[u.who].push(message));
      }
      channel.on("presence", { event: "sync" }, () => {});
      const state = await joined(channel);
      expect(state === "SUBSCRIBED", `${u.who}: subscription ${state}`);
      lobbyChannels[u.who] = channel;
    }
    const sent = performance.now();
    const acked = await lobbyChannels.a.send({ type: "broadcast", event: "wave", payload: { from: "a" } });
    expect(acked === "ok", `send: ${acked}`);
    await until(() => heard.b.some((m) => m.event === "wave"), "second heard the first");
    report.note(`realtime: broadcast heard ${Math.round(performance.now() - sent)} ms after`);
    const wave = heard.b.find((m) => m.event === "wave");
    expect(show(wave.payload) === show({ from: "a" }), `second heard ${show(wave)}`);
    const bytes = Uint8Array.from({ length: 64 }, (_, i) => i * 3);
    expect((await lobbyChannels.b.send({ type: "broadcast", event: "blob", payload: bytes.buffer })) === "ok", "binary send");
    await until(() => heard.a.some((m) => m.event === "blob"), "first heard the binary broadcast");
    const blob = heard.a.find((m) => m.event === "blob").payload;
    expect(blob instanceof ArrayBuffer, `binary payload arrived as ${typeof blob}`);
    expect(show([...new Uint8Array(blob)]) === show([...bytes]), "binary payload changed");
    const answer = await service.channel(lobby).httpSend("notice", { from: "server" });
    expect(answer.success, `httpSend: ${show(answer)}`);
    for (const u of users) await until(() => heard[u.who].some((m) => m.event === "notice"), `${u.who} heard the server`);
    expect(!heard.a.some((m) => m.event === "wave"), "the first heard itself without self");
  }

  async function presence() {
    for (const u of users) {
      const answer = await lobbyChannels[u.who].track({ who: u.who });
      expect(answer === "ok", `${u.who}: track ${answer}`);
    }
    for (const u of users) {
      await until(() => show(Object.keys(lobbyChannels[u.who].presenceState()).sort()) === show(["a", "b"]), `${u.who}: presence of both`);
    }
    await lobbyChannels.b.untrack();
    await until(() => show(Object.keys(lobbyChannels.a.presenceState())) === show(["a"]), "second left");
    for (const u of users) await u.client.removeChannel(lobbyChannels[u.who]);
  }

  // `contract-room-<auth uid>`: clients/realtime-policies.sql lets only that user in.
  async function privateChannel() {
    const room = `contract-room-${first.authId}`;
    for (const [u, expected] of [[first, "SUBSCRIBED"], [second, "CHANNEL_ERROR"]]) {
      const channel = u.client.channel(room, { config: { private: true } });
      const state = await joined(channel);
      expect(state.startsWith(expected), `${u.who} joining the first's room: ${state}`);
      await u.client.removeChannel(channel);
    }
  }

  async function remove(table) {
    const key = `${table} a`;
    const gone = dataOf(await second.client.from(table).delete().eq("id", ids[key]).select(), "delete");
    expect(gone.length === 0, `second deleted ${show(gone)}`);
    expect((await ratingOf(table, key)) > 0, "the first's row vanished");
    const mine = [key, `${table} cafe`].filter((k) => k in ids).map((k) => ids[k]);
    const deleted = dataOf(await first.client.from(table).delete().in("id", mine).select(), "delete");
    expect(show(deleted.map((r) => r.id).sort()) === show([...mine].sort()), `first deleted ${show(deleted)}`);
    const left = dataOf(await first.client.from(table).select("id"), "select");
    expect(left.length === 0, `first still has ${show(left)}`);
  }

  async function deleteWithoutFilterRefused() {
    await refused(() => second.client.from("preference").delete(), "delete without a filter");
  }

  async function signOut() {
    for (const u of users) {
      const { error } = await u.client.auth.signOut();
      expect(!error, `${u.who}: ${error && errorText(error)}`);
      const { data } = await u.client.auth.getSession();
      expect(data.session === null, `${u.who}: session kept`);
      await refused(() => u.client.auth.refreshSession({ refresh_token: u.refreshToken }), "old refresh token");
    }
  }

  async function adminUsers() {
    const { user: got } = dataOf(await service.auth.admin.getUserById(first.authId), "getUserById");
    expect(got?.email === first.email, show(got));
    for (const u of users) dataOf(await service.auth.admin.deleteUser(u.authId), "deleteUser");
    await refused(() => service.auth.admin.getUserById(first.authId), "deleted user");
  }

  async function deleteBucket() {
    if (path) await service.storage.from(bucket).remove([path]);
    dataOf(await service.storage.deleteBucket(bucket), "deleteBucket");
  }

  async function deletePlaces() {
    const gone = dataOf(await service.from("place").delete().in("id", [museum, park]).select(), "delete");
    expect(gone.length === 2, `deleted ${gone.length} places`);
  }

  const r = (...args) => report.run(...args);
  await r("service_role: insert places", insertPlaces);
  await r("anon: select place", anonReadsPlaces, ["service_role: insert places"]);
  await r("service_role: create bucket", createBucket);
  await r("auth: sign up", signUp);
  await r("auth: sign in with password", signIn, ["auth: sign up"]);
  await r("auth: refresh session", refresh, ["auth: sign in with password"]);
  await r("auth: get user", getUser, ["auth: sign in with password"]);
  await r("auth: update user metadata", updateUser, ["auth: sign in with password"]);
  await r("rest: preference insert", preferenceInsert, ["auth: sign in with password"]);
  await r("rest: preference select", preferenceSelect, ["rest: preference insert"]);
  await r("rest: preference update", preferenceUpdate, ["rest: preference insert"]);
  await r("rest: preference upsert", preferenceUpsert, ["rest: preference insert"]);
  const placesAndUsers = ["service_role: insert places", "rest: preference insert"];
  await r("rest: review insert", reviewInsert, placesAndUsers);
  await r("rest: review select (embedding place)", reviewSelect, ["rest: review insert"]);
  await r("rest: review update", reviewUpdate, ["rest: review insert"]);
  await r("rest: review upsert", reviewUpsert, ["rest: review insert"]);
  await r("rest: rpc recommend_places", recommend, placesAndUsers);
  await r("anon: rpc recommend_places refused or empty", anonRecommend);
  const storage = ["service_role: create bucket", "auth: sign in with password"];
  await r("storage: upload", upload, storage);
  await r("storage: download", download, ["storage: upload"]);
  await r("storage: signed URL", signedUrl, ["storage: upload"]);
  await r("storage: remove", storageRemove, ["storage: upload"]);
  await r("realtime: postgres_changes on preference", realtime, ["rest: preference insert"]);
  await r("realtime: broadcast between the users", broadcast, ["auth: sign in with password"]);
  await r("realtime: presence sync", presence, ["realtime: broadcast between the users"]);
  await r("realtime: private channel, the other user refused by policy", privateChannel, ["auth: sign in with password"]);
  await r("rest: delete without a filter is refused", deleteWithoutFilterRefused, ["rest: preference insert"]);
  await r("rest: review delete", () => remove("review"), ["rest: review insert"]);
  await r("rest: preference delete", () => remove("preference"), ["rest: preference insert"]);
  await r("auth: sign out", signOut, ["auth: refresh session"]);
  await r("auth: admin get and delete users", adminUsers, ["auth: sign up"]);
  await r("service_role: delete bucket", deleteBucket, ["service_role: create bucket"]);
  await r("service_role: delete places", deletePlaces, ["service_role: insert places"]);
  for (const client of [service, anon, first.client, second.client]) {
    await client.removeAllChannels();
    client.realtime.disconnect();
  }
  return report.finish();
}

process.exit(await contract(environment()));
