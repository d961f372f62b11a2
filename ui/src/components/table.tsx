// Tables of entities: headers, rows, and what to show when there are none.
import type { ComponentChildren } from "preact";

export type Column<T> = {
  title: string;
  cell: (row: T) => ComponentChildren;
  numeric?: boolean;
};

export function Table<T>({
  columns,
  rows,
  empty,
  onRow,
  label,
}: {
  columns: Column<T>[];
  rows: T[];
  empty: ComponentChildren;
  onRow?: (row: T) => void;
  label: string;
}) {
  if (rows.length === 0) return <>{empty}</>;
  return (
    <div class="table-wrap">
      <table aria-label={label}>
        <thead>
          <tr>
            {columns.map((c) => (
              <th class={c.numeric ? "num" : undefined} scope="col">
                {c.title}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr
              class={onRow ? "clickable" : undefined}
              tabIndex={onRow ? 0 : undefined}
              onClick={onRow ? () => onRow(row) : undefined}
              onKeyDown={
                onRow
                  ? (e) => {
                      if (e.key === "Enter") onRow(row);
                    }
                  : undefined
              }
            >
              {columns.map((c) => (
                <td class={c.numeric ? "num" : undefined}>{c.cell(row)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
