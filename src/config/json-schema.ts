/**
 * The JSON Schema of the configuration file (input form: human units as strings), generated from
 * the zod schema so editors can validate config.yaml. config/docker-autogrow.schema.json is this
 * output; test/unit/config-schema.test.ts keeps them in sync (`npm run schema` rewrites it).
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<
    string,
    unknown
  >;
  return {
    ...schema,
    $id: 'https://github.com/docker-autogrow/docker-autogrow/config/docker-autogrow.schema.json',
    title: 'docker-autogrow configuration',
  };
}

export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
