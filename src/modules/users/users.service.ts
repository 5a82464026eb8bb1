import { randomUUID } from 'node:crypto';
import { Injectable, NotFoundException } from '@nestjs/common';
import { DataSource, Repository } from 'typeorm';
import { UserEntity } from '../../connectors/repo/entities/user.entity';

@Injectable()
export class UsersService {
  private readonly users: Repository<UserEntity>;

  constructor(dataSource: DataSource) {
    this.users = dataSource.getRepository(UserEntity);
  }

  /** Names are not unique (as in the original): every call creates a new user. */
  async create(name: string): Promise<UserEntity> {
    const user = this.users.create({ id: randomUUID(), name, createdAt: new Date() });
    return this.users.save(user);
  }

  /** The first user with exactly this name; karya-ui uses this as "sign in". */
  async getByName(name: string): Promise<UserEntity> {
    const user = await this.users.findOne({ where: { name }, order: { createdAt: 'ASC' } });
    if (!user) throw new NotFoundException(`User (${name}) not found`);
    return user;
  }

  /** The user `id` when its name is exactly `name`; the same 404 as getByName otherwise. */
  async getOwnByName(id: string, name: string): Promise<UserEntity> {
    const user = await this.users.findOne({ where: { id, name } });
    if (!user) throw new NotFoundException(`User (${name}) not found`);
    return user;
  }
}
