// Runs one Edge Function (its index.ts, a `Deno.serve` handler as on Supabase) on the port
// the Planwise API chose for it, and tells the API when it listens. Read by Deno only.
const port = Number(Deno.env.get("PLANWISE_FUNCTION_PORT"));
const entrypoint = Deno.env.get("PLANWISE_FUNCTION_ENTRYPOINT")!;
const parent = Deno.ppid;
Deno.env.delete("PLANWISE_FUNCTION_PORT");
Deno.env.delete("PLANWISE_FUNCTION_ENTRYPOINT");

type Handler = (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>;
const serve = Deno.serve;

// deno-lint-ignore no-explicit-any
function planwiseServe(...args: any[]): Deno.HttpServer {
  let options: Record<string, unknown> = {};
  let handler: Handler;
  if (typeof args[0] === "function") {
    handler = args[0];
  } else {
    options = { ...args[0] };
    handler = args[1] ?? options.handler;
  }
  const onListen = options.onListen as ((address: Deno.NetAddr) => void) | undefined;
  return serve({
    ...options,
    handler,
    port,
    hostname: "127.0.0.1",
    onListen(address: Deno.NetAddr) {
      console.log("PLANWISE_FUNCTION_LISTENING");
      onListen?.(address);
    },
  } as Deno.ServeTcpOptions & { handler: Handler });
}

Object.defineProperty(Deno, "serve", { value: planwiseServe });

// The API owns this process: when it goes away (even by SIGKILL), so does the function.
setInterval(() => {
  if (Deno.ppid !== parent) Deno.exit(0);
}, 1000);

await import(entrypoint);
