import type { Command } from 'commander';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';

export function registerSchema(program: Command, io: CliIO): void {
  const command = program
    .command('schema')
    .description('Print the JSON Schema of bundle recipes (apertus.dev/v1), for editors and CI linting')
    .action(async () => {
      const { recipeJsonSchema } = await import('../../core/spec/recipe-schema.js');
      writeJson(io, recipeJsonSchema());
    });
  withExamples(command, [
    { run: 'schema > bundles/recipe.schema.json', does: 'the schema editors validate apertus.yaml with' },
  ]);
}
