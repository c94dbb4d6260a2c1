// The Edge Functions contract with supabase-js (`functions.invoke`): the shipped
// `trip-digest` function, as a signed-in user, against any stack:
//
//   SUPABASE_URL=… SUPABASE_ANON_KEY=… SUPABASE_SERVICE_ROLE_KEY=… node functions-contract.mjs
//
// The steps are those of api/tests/contract/functions_contract.py, under the same names.
// Prints `ok <step>` or `FAIL <step>: <reason>` and `N passed, M failed`; exits 1 on any
// failure. README: "Edge Functions (`/functions/v1`)".

import { randomUUID } from "node:crypto";
import { createClient, FunctionsHttpError } from "@supabase/supabase-js";
import WebSocket from "ws";

const FUNCTION = "trip-digest";
const HERE = [48.8606, 2.3376]; // the Louvre
const PASSWORD = "Contract-pass-1234";

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

function dataOf({ data, error }, what) {
  if (error) throw new Error(`${what}: ${error.code ?? ""} ${error.message}`);
  return data;
}

const env = {
  url: (process.env.SUPABASE_URL ?? "").replace(/\/+$/, ""),
  anonKey: process.env.SUPABASE_ANON_KEY,
  serviceRoleKey: process.env.SUPABASE_SERVICE_ROLE_KEY,
  emailDomain: process.env.CONTRACT_EMAIL_DOMAIN ?? "example.com",
};
if (!env.url || !env.anonKey || !env.serviceRoleKey) {
  console.log("FAIL environment: SUPABASE_URL, SUPABASE_ANON_KEY, SUPABASE_SERVICE_ROLE_KEY");
  process.exit(2);
}

function newClient(key) {
  return createClient(env.url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket },
  });
}

const passed = [];
const failed = [];
async function run(name, step, needs = []) {
  const missing = needs.filter((need) => !passed.includes(need));
  try {
    if (missing.length) throw new Error(`not run: needs ${missing.join(", ")}`);
    await step();
    passed.push(name);
    console.log(`ok ${name}`);
  } catch (error) {
    failed.push(name);
    console.log(`FAIL ${name}: ${String(error?.message ?? error).slice(0, 400)}`);
  }
}

async function statusOf(error) {
  expect(error instanceof FunctionsHttpError, `expected an HTTP error, got ${error}`);
  return error.context.status;
}

const tag = randomUUID().replaceAll("-", "").slice(0, 10);
const places = ["museum", "park"].map((category, index) => ({
  id: `contract-${tag}-${category}`,
  name: `Contract ${category} ${tag}`,
  lat: HERE[0] + 0.015 * index, // the park ~1.7 km north of the museum
  lng: HERE[1],
  category,
  types: `${category},point_of_interest`,
  rating: 4.5,
  user_ratings_total: 100,
}));
const ids = places.map((place) => place.id);
const stops = places.map((place) => ({ lat: place.lat + 0.0001, lng: place.lng }));
const service = newClient(env.serviceRoleKey);
const anon = newClient(env.anonKey);
const user = newClient(env.anonKey);
let authId = "";
const timings = [];

await run("service_role: insert places", async () => {
  const inserted = dataOf(await service.from("place").insert(places).select(), "insert");
  expect(inserted.length === 2, `got ${JSON.stringify(inserted)}`);
});
await run("auth: sign up, preferences", async () => {
  const email = `contract-jsfn-${tag}-a@${env.emailDomain}`;
  const answer = dataOf(await user.auth.signUp({ email, password: PASSWORD }), "sign up");
  expect(answer.session, "no session (email confirmation on?)");
  authId = answer.user.id;
  for (const category of ["museum", "park"]) {
    dataOf(await user.from("preference").insert({ category, rating: 0.9 }), "preference");
  }
});
const needs = ["service_role: insert places", "auth: sign up, preferences"];
await run(`functions: invoke ${FUNCTION}`, async () => {
  let data;
  for (let i = 0; i < 3; i++) { // the first call may start the function; the others are warm
    const started = performance.now();
    data = dataOf(
      await user.functions.invoke(FUNCTION, { body: { stops, radius_km: 2 } }),
      "invoke",
    );
    timings.push(performance.now() - started);
  }
  expect(data?.stops?.length === 2, `got ${JSON.stringify(data)}`);
  const perStop = data.stops.map((stop) => stop.places.map((p) => p.id).filter((id) => ids.includes(id)));
  expect(JSON.stringify(perStop) === JSON.stringify([[ids[0]], [ids[1]]]), `per stop: ${JSON.stringify(perStop)}`);
  expect(data.stops[0].places[0].category === "museum", `got ${JSON.stringify(data.stops[0])}`);
}, needs);
await run(`functions: ${FUNCTION} refuses the anon key`, async () => {
  const { error } = await anon.functions.invoke(FUNCTION, { body: { stops } });
  expect((await statusOf(error)) === 401, `status ${error?.context?.status}`);
});
await run(`functions: ${FUNCTION} refuses a bad body`, async () => {
  const { error } = await user.functions.invoke(FUNCTION, { body: { stops: [{ lat: 91, lng: 0 }] } });
  expect((await statusOf(error)) === 400, `status ${error?.context?.status}`);
}, needs);
await run("service_role: clean up", async () => {
  dataOf(await service.auth.admin.deleteUser(authId), "delete user");
  dataOf(await service.from("place").delete().in("id", ids), "delete places");
}, needs);
if (timings.length) {
  const rest = timings.slice(1).map((t) => t.toFixed(1)).join(", ");
  console.log(`-- invoke: first ${timings[0].toFixed(0)} ms, then ${rest} ms`);
}
console.log(`${passed.length} passed, ${failed.length} failed`);
process.exit(failed.length ? 1 : 0);
