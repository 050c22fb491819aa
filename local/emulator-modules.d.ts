// kinesalite and dynalite ship no types: each default-exports a factory of an http.Server.
declare module 'kinesalite' {
  import type { Server } from 'node:http';

  const kinesalite: (options?: Record<string, unknown>) => Server;
  export default kinesalite;
}
declare module 'dynalite' {
  import type { Server } from 'node:http';

  const dynalite: (options?: Record<string, unknown>) => Server;
  export default dynalite;
}
