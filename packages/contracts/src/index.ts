export * from "./messaging.js";
