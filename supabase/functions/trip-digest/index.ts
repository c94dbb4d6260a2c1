// trip-digest: the best places along a day's route, for the signed-in user.
//
// POST {"stops": [{"lat": 48.86, "lng": 2.34}, ...], "radius_km"?: 2, "per_stop"?: 5,
//       "category"?: "museum"}
// → {"stops": [{"lat", "lng", "places": [{id, name, category, lat, lng, rating,
//                                           distance_km, score}, ...]}, ...]}
//
// Each stop is ranked by `recommend_places` (the database's one recommendation query),
// called through supabase-js as the caller: the request's Authorization header is
// forwarded, so RLS and the caller's own preferences decide. A place near several stops
// is listed once, at the stop where it scores best. The same file runs on the local stack
// and, unchanged, on Supabase (`supabase functions deploy trip-digest`).
import { createClient } from "@supabase/supabase-js";

const MAX_STOPS = 25;
const MAX_PER_STOP = 20;
const MAX_RESULTS = 100; // recommend_places' own limit per call
const CORS = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
};

type Stop = { lat: number; lng: number };
type Place = {
  id: string;
  name: string;
  category: string;
  place_lat: number;
  place_lng: number;
  rating: number | null;
  distance_km: number;
  score: number;
};

class BadRequest extends Error {}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...CORS, "Content-Type": "application/json" },
  });
}

function number(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new BadRequest(`${what} must be a number from ${min} to ${max}`);
  }
  return value;
}

function parse(body: unknown) {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new BadRequest('the body must be a JSON object: {"stops": [{"lat", "lng"}, …]}');
  }
  const { stops, radius_km = 2, per_stop = 5, category = null } = body as Record<
    string,
    unknown
  >;
  if (!Array.isArray(stops) || stops.length === 0 || stops.length > MAX_STOPS) {
    throw new BadRequest(`stops must be a list of 1 to ${MAX_STOPS} {"lat", "lng"} objects`);
  }
  const parsed: Stop[] = stops.map((stop, index) => {
    if (typeof stop !== "object" || stop === null) {
      throw new BadRequest(`stops[${index}] must be an object {"lat", "lng"}`);
    }
    const { lat, lng } = stop as Record<string, unknown>;
    return {
      lat: number(lat, `stops[${index}].lat`, -90, 90),
      lng: number(lng, `stops[${index}].lng`, -180, 180),
    };
  });
  if (category !== null && typeof category !== "string") {
    throw new BadRequest("category must be a string");
  }
  const perStop = number(per_stop, "per_stop", 1, MAX_PER_STOP);
  if (!Number.isInteger(perStop)) throw new BadRequest("per_stop must be an integer");
  return {
    stops: parsed,
    radiusKm: number(radius_km, "radius_km", 0.001, 50),
    perStop,
    category: category as string | null,
  };
}

/** The `role` claim of the bearer JWT (already verified by the functions gateway). */
function role(authorization: string): string | null {
  try {
    const payload = authorization.replace(/^Bearer\s+/i, "").split(".")[1];
    const text = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(text).role ?? null;
  } catch {
    return null;
  }
}

Deno.serve(async (req: Request) => {
  if (req.method === "OPTIONS") return new Response("ok", { headers: CORS });
  if (req.method !== "POST") return json({ error: "use POST" }, 405);
  const authorization = req.headers.get("Authorization") ?? "";
  if (role(authorization) !== "authenticated") {
    return json({ error: "sign in first: trip-digest ranks places for a signed-in user" }, 401);
  }
  let request;
  try {
    request = parse(await req.json());
  } catch (error) {
    const message = error instanceof BadRequest ? error.message : "the body is not valid JSON";
    return json({ error: message }, 400);
  }
  const supabase = createClient(
    Deno.env.get("SUPABASE_URL")!,
    Deno.env.get("SUPABASE_ANON_KEY")!,
    {
      global: { headers: { Authorization: authorization } },
      auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    },
  );
  const maxResults = Math.min(MAX_RESULTS, request.perStop * request.stops.length);
  const answers = await Promise.all(request.stops.map((stop) =>
    supabase.rpc("recommend_places", {
      lat: stop.lat,
      lng: stop.lng,
      radius_km: request.radiusKm,
      max_results: maxResults,
      only_category: request.category,
    })
  ));
  const failed = answers.find((answer) => answer.error);
  if (failed?.error) {
    const status = failed.status >= 400 && failed.status < 500 ? failed.status : 502;
    return json({ error: failed.error.message, code: failed.error.code }, status);
  }
  // Each place goes to the stop where it scores best (the earlier stop on a tie).
  const best = new Map<string, number>();
  answers.forEach((answer, index) => {
    for (const place of (answer.data ?? []) as Place[]) {
      const seen = best.get(place.id);
      if (seen === undefined || place.score > findScore(answers[seen].data, place.id)) {
        best.set(place.id, index);
      }
    }
  });
  return json({
    stops: request.stops.map((stop, index) => ({
      ...stop,
      places: ((answers[index].data ?? []) as Place[])
        .filter((place) => best.get(place.id) === index)
        .slice(0, request.perStop)
        .map((place) => ({
          id: place.id,
          name: place.name,
          category: place.category,
          lat: place.place_lat,
          lng: place.place_lng,
          rating: place.rating,
          distance_km: place.distance_km,
          score: place.score,
        })),
    })),
  });
});

function findScore(data: unknown, id: string): number {
  return ((data ?? []) as Place[]).find((place) => place.id === id)?.score ?? -Infinity;
}
