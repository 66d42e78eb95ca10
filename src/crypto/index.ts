/**
 * The Bluetooth security toolbox, a leaf module: it imports nothing of this project, only
 * @noble/ciphers (AES, CMAC) and @noble/curves (P-256). SMP pairing, LE privacy (ah) and the
 * GATT database hash use it. Core 5.4 Vol 3 Part H 2.2.
 */
export { e, aesCmac, ah } from './aes.js';
export { f4, f5, f6, g2, numericComparisonValue, h6, h7, saltFromTag, ioCapField, passkeyAsR, maskKey, type F5Result } from './sc.js';
export {
  keyPairFromPrivateKey,
  generateKeyPair,
  DEBUG_PRIVATE_KEY,
  DEBUG_PUBLIC_KEY,
  isValidPublicKey,
  isDebugPublicKey,
  checkPeerPublicKey,
  computeDhKey,
  type P256KeyPair,
  type PublicKeyVerdict,
  type KeySource,
} from './p256.js';
export { bytesEqualConstantTime } from './bytes.js';
