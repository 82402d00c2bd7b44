// Commands beyond `site`: each part of XSM adds its own file and lists its commands here.
import type { Command } from '../command.ts';

export const extraCommands: Command[] = [];
