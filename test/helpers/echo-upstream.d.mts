import type { Server } from 'node:http';
export function startEcho(port?: number, host?: string): Promise<Server>;
