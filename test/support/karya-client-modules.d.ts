/**
 * karya-client@1.1.7 (npm) is ESM-only and ships no `.d.ts`: every deep import is untyped. This shorthand
 * ambient declaration lets the compiler accept the imports; `karya-client-facade.ts` gives them types once.
 */
declare module 'karya-client/*';
