/** The contract every part of udpwatch imports: wire format, codec, names, partitioning. */
export * from './codec.js';
export * from './ip-address.js';
export * from './partitioning.js';
export * from './resources.js';
export * from './wire.js';
