import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity({ name: 'api_keys' })
export class ApiKeyEntity {
  @PrimaryColumn('uuid')
  id!: string;

  @Column({ name: 'user_id', type: 'uuid' })
  userId!: string;

  /** The key's first characters, for telling keys apart; never enough to use it. */
  @Column({ type: 'varchar', length: 32 })
  prefix!: string;

  /** Hex SHA-256 of the whole key; the key itself is never stored. */
  @Column({ type: 'char', length: 64 })
  hash!: string;

  @Column({ name: 'created_at', type: 'timestamptz', precision: 3 })
  createdAt!: Date;

  @Column({ name: 'last_used_at', type: 'timestamptz', precision: 3, nullable: true })
  lastUsedAt!: Date | null;
}
