export declare function valuesTable(text?: string): string;
