// The dispatcher's database code passes every value through knex's query builder or bindings: a
// static check over src/dispatcher/*.ts, on the TypeScript syntax tree. Every call of a raw-SQL API
// (knex's raw/whereRaw/… and the drivers' pragma/exec/prepare/query) must take its SQL text as a
// plain string literal (no `${…}` and no concatenation); values go in the bindings.

import t from 'tap';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { ROOT } from '../helpers/eventd.js';

const KNEX_RAW = new Set(['raw', 'whereRaw', 'orWhereRaw', 'andWhereRaw', 'havingRaw', 'orHavingRaw', 'andHavingRaw', 'orderByRaw', 'groupByRaw', 'joinRaw', 'fromRaw', 'onRaw']);
/** Driver calls that run SQL text: better-sqlite3's pragma/exec/prepare, pg's query. RegExp#exec is not one. */
const DRIVER_SQL = new Set(['pragma', 'exec', 'prepare', 'query']);

interface Scan {
  /** Raw-SQL calls whose SQL is a plain literal (the allowed kind), as `file:line method`. */
  literal: string[];
  /** Raw-SQL calls whose SQL is built at run time. */
  problems: string[];
}

function scanRawSql(fileName: string, text: string): Scan {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const scan: Scan = { literal: [], problems: [] };
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
      const method = node.expression.name.text;
      const receiver = node.expression.expression;
      const regexExec = method === 'exec' && ts.isRegularExpressionLiteral(receiver);
      if (KNEX_RAW.has(method) || (DRIVER_SQL.has(method) && !regexExec)) {
        const where = `${fileName}:${source.getLineAndCharacterOfPosition(node.getStart()).line + 1} ${method}`;
        const sql = node.arguments[0];
        if (sql !== undefined && (ts.isStringLiteral(sql) || ts.isNoSubstitutionTemplateLiteral(sql))) scan.literal.push(where);
        else scan.problems.push(`${where}(${sql ? sql.getText(source).slice(0, 80) : ''}): SQL built at run time; use the query builder or a literal with bindings`);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return scan;
}

t.test('the check catches SQL built from values, and allows literals with bindings', async (t) => {
  const bad = [
    'knex.raw(`SELECT * FROM virtual_machines WHERE name = \'${name}\'`)',
    "db.knex('vms').whereRaw('name = ' + name)",
    'trx.orderByRaw(column)',
    'conn.pragma(`user_version = ${n}`)',
    'client.query("DELETE FROM nics WHERE vm_id = " + id)',
    'knex.schema.raw(sql)',
  ];
  for (const code of bad) t.equal(scanRawSql('x.ts', code).problems.length, 1, `caught: ${code}`);
  const good = [
    "knex.raw('SELECT * FROM virtual_machines WHERE name = ?', [name])",
    'db.knex("vms").whereRaw(`lower(name) = lower(?)`, [name])',
    "conn.pragma('foreign_keys = ON')",
    '/^a(.*)$/.exec(input)',
    "db.knex('virtual_machines').where({ name }).update({ operstate })",
  ];
  for (const code of good) t.equal(scanRawSql('x.ts', code).problems.length, 0, `allowed: ${code}`);
});

t.test('src/dispatcher builds no SQL from values', async (t) => {
  const dir = join(ROOT, 'src', 'dispatcher');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  t.ok(files.includes('store.ts') && files.includes('db.ts'), 'the database code is among the files scanned');
  const scans = files.map((f) => scanRawSql(`src/dispatcher/${f}`, readFileSync(join(dir, f), 'utf8')));
  t.same(scans.flatMap((s) => s.problems), [], 'no raw SQL built at run time');
  // The scan sees the calls it is about: db.ts's SQLite pragmas are literal raw SQL.
  t.ok(scans.flatMap((s) => s.literal).some((w) => w.startsWith('src/dispatcher/db.ts:') && w.endsWith(' pragma')), 'the literal pragmas of db.ts were seen');
});
