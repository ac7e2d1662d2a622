import type { Command } from 'commander';
import { recipeJsonSchema } from '../../core/spec/recipe-schema.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';

export function registerSchema(program: Command, io: CliIO): void {
  program
    .command('schema')
    .description('Print the JSON Schema of bundle recipes (apertus.dev/v1), for editors and CI linting')
    .action(() => {
      writeJson(io, recipeJsonSchema());
    });
}
