import { Argument, type Command } from 'commander';
import { withExamples } from '../help-text.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';

const DOCUMENTS = ['recipe', 'inventory'] as const;
type SchemaDocument = (typeof DOCUMENTS)[number];

export function registerSchema(program: Command, io: CliIO): void {
  const command = program
    .command('schema')
    .description('Print the JSON Schema of recipes (apertus.yaml) or inventories, for editors and CI linting')
    .addArgument(new Argument('[document]', 'which document').choices(DOCUMENTS).default('recipe'))
    .action(async (document: SchemaDocument) => {
      if (document === 'inventory') {
        const { inventoryJsonSchema } = await import('../../core/spec/inventory.js');
        writeJson(io, inventoryJsonSchema());
      } else {
        const { recipeJsonSchema } = await import('../../core/spec/recipe-schema.js');
        writeJson(io, recipeJsonSchema());
      }
    });
  withExamples(command, [
    { run: 'schema > bundles/recipe.schema.json', does: 'the schema editors validate apertus.yaml with' },
    { run: 'schema inventory > hosts.schema.json', does: 'the schema an inventory (hosts.yaml) follows' },
  ]);
}
