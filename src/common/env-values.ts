/** A comma-separated environment value as its non-empty, trimmed items (no imports: providers use it too). */
export function splitList(value: string | undefined): string[] {
  return value?.split(',').map((item) => item.trim()).filter((item) => item !== '') ?? []
}
