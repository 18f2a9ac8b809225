#!/usr/bin/env node
/**
 * `lab-server`'s entry point. It checks that the process may open enough files to load the program
 * at all, then loads it (lab-server-main.ts). The check must come first, in a module that imports
 * next to nothing: Node loads a module's whole import graph before running any of it.
 */
import { requireDescriptorsToLoad } from './descriptor-limit.js';

requireDescriptorsToLoad('lab-server');
await import('./lab-server-main.js');
