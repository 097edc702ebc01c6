// Regenerates config/docker-autogrow.schema.json from src/config/schema.ts (`npm run schema`).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { configJsonSchemaText } from '../src/config/json-schema.js';

const target = path.resolve(import.meta.dirname, '..', '..', 'config', 'docker-autogrow.schema.json');
writeFileSync(target, configJsonSchemaText());
process.stdout.write(`wrote ${target}\n`);
